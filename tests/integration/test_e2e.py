"""End to end (issue 8): the real warden with every worker, the paper
broker, a private redis-server and PostgreSQL cluster, and a counting
webhook sink. Positions are seeded in PostgreSQL; the aggregator replays a
tick file built so that four known positions cross their stops at known
times (6, 8, 10 and 12 s into the replay) and the others never do:

 - each crossing position is closed once, with reason stop_loss and the
   price the broker filled at (the bid for a long, the ask for a short),
   in the order and at the spacing the file dictates;
 - the broker saw exactly one order per crossing position (its per-id
   posts and fills), and no other order;
 - the sink received exactly one exit alert per exit (by
   X-Warden-Alert-Id), in the order of the exits, each naming its position;
 - every position that never crossed stays open.

Exact fill prices: the broker fills at the last quote the aggregator wrote
to Redis, which trails the market data socket by up to one sink flush. So
each crossing comes in two ticks half a second apart: first the side the
fill will use moves past the stop while the mid stays on the safe side (no
exit), then the other side follows and the mid crosses. By the time the
monitor sends the order, Redis has held the fill-side price for 0.5 s."""
import time

import pytest

import e2e_system as E

pytestmark = pytest.mark.skipif(not E.bins_built(), reason="workers not built")

T0 = 1700000000
STEP_S = 0.1
LENGTH_S = 16.0
SYMS = ["E1", "E2", "E3", "E4"]

# symbol -> (side of the crossing position, stop, time the mid crosses,
#            phase-A (bid, ask), phase-B (bid, ask), expected fill)
CROSSINGS = {
    "E1": ("long", 97.0, 6.0, (96.5, 98.0), (96.5, 96.52), 96.5),
    "E2": ("short", 103.0, 8.0, (102.0, 103.5), (103.48, 103.5), 103.5),
    "E3": ("long", 98.0, 10.0, (97.8, 99.0), (97.8, 97.82), 97.8),
    "E4": ("short", 101.5, 12.0, (100.5, 101.8), (101.78, 101.8), 101.8),
}
PHASE_A_LEAD_S = 0.5


def quote_at(sym, t):
    side, stop, tx, a, b, fill = CROSSINGS[sym]
    if t >= tx:
        return b
    if t >= tx - PHASE_A_LEAD_S:
        return a
    return (99.99, 100.01)


def write_ticks(path):
    n = int(round(LENGTH_S / STEP_S))
    with open(path, "w") as f:
        f.write("ts,venue,symbol,bid,bid_size,ask,ask_size\n")
        for i in range(n + 1):
            t = i * STEP_S
            for s in SYMS:
                bid, ask = quote_at(s, t)
                f.write("%d.%03d,XA,%s,%.2f,100,%.2f,100\n" % (
                    T0 + int(t), int(round((t - int(t)) * 1000)), s, bid, ask))


def test_replayed_crossings_close_once_in_order(warden, tmp_path):
    csv = tmp_path / "ticks.csv"
    write_ticks(csv)
    sysm = E.System(warden, tmp_path, SYMS, source="replay", replay_file=csv)
    # The replay starts when the aggregator does: only once the monitor has
    # loaded the positions, so the times in the file are the times of the run.
    sysm.autostart["aggregator"] = "no"
    try:
        sysm.start_services()
        crossing = {}
        for s, (side, stop, *_rest) in CROSSINGS.items():
            crossing[s] = sysm.seed([dict(symbol=s, side=side, stop_loss=stop)])[0]
        # Never crossed: near misses on the crossing symbols (a stop the mid
        # gets within 0.5 of, a target it never reaches) and far stops.
        stay = sysm.seed([
            dict(symbol="E1", side="long", stop_loss=96.0),
            dict(symbol="E1", side="long", stop_loss=90, take_profit=120),
            dict(symbol="E2", side="short", stop_loss=104.0),
            dict(symbol="E2", side="long", stop_loss=95, take_profit=104.0),
            dict(symbol="E3", side="long", stop_loss=97.0, take_profit=110),
            dict(symbol="E4", side="short", stop_loss=110, take_profit=90),
            dict(symbol="E4", side="long", stop_loss=95, take_profit=102.5),
        ])
        sysm.start_warden()
        assert sysm.pm("metrics")["positions"]["open"] == len(crossing) + len(stay)
        t_start = time.time()
        out = warden.ctl("start", "aggregator")
        assert out["affected"] == ["aggregator"], out
        warden.wait_state("aggregator", "RUNNING", 10, ready=True)

        # Every crossing closes, and its alert reaches the sink.
        def done():
            ps = sysm.positions()
            closed = all(ps[i].status == "closed" for i in crossing.values())
            return closed and len(sysm.sink_alerts()) >= len(crossing)
        warden.wait_until(done, LENGTH_S + 15, "every crossing closed and alerted")
        time.sleep(1.0)  # room for a duplicate order or alert to show up
        ps = sysm.positions()

        order = sorted(CROSSINGS, key=lambda s: CROSSINGS[s][2])
        for s in order:
            p = ps[crossing[s]]
            side, stop, tx, _a, _b, fill = CROSSINGS[s]
            assert (p.status, p.reason) == ("closed", "stop_loss"), p
            assert float(p.price) == fill, "%s: filled at %s, expected %s" % (s, p.price, fill)
            assert p.coid == "wd-pm-%d" % p.id, p
        # Closed in the order of the file, at its spacing (each exit within a
        # second of when the file says it crosses, relative to the first).
        closing = [ps[crossing[s]].closing_at for s in order]
        assert closing == sorted(closing), closing
        first_tx = CROSSINGS[order[0]][2]
        for s, c in zip(order, closing):
            want = CROSSINGS[s][2] - first_tx
            got = c - closing[0]
            assert abs(got - want) < 1.0, "%s closed %.2fs after the first, expected %.1fs" % (
                s, got, want)
        # ... and not before the file reached the crossing (the replay began at t_start).
        assert ps[crossing[order[0]]].closing_at >= t_start + first_tx - 1.0

        for i in stay:
            assert ps[i].status == "open", ps[i]

        # The broker: one order per crossing position, nothing else.
        st = sysm.broker.stats()
        coids = {"wd-pm-%d" % i for i in crossing.values()}
        assert set(st["per_id"]) == coids, st["per_id"]
        for c in coids:
            per = st["per_id"][c]
            assert per["posts"] == 1 and per["fills"] == 1, (c, per)
        assert st["orders"] == len(coids) and st["max_fills_per_id"] == 1, st

        # The sink: one alert per exit, in the order of the exits.
        alerts = sysm.sink_alerts()
        ids = [aid for _t, aid, _d in alerts]
        assert len(ids) == len(set(ids)) == len(crossing), ids
        got_positions = [int(d["labels"]["position"]) for _t, _i, d in alerts]
        assert got_positions == [crossing[s] for s in order], got_positions
        for _t, aid, d in alerts:
            assert d["id"] == aid and d["labels"]["reason"] == "stop_loss", d
            assert d["labels"]["kind"] == "exit", d
        m = sysm.pm("metrics")
        assert m["exits_by_reason"]["stop_loss"] == len(crossing), m["exits_by_reason"]
        assert m["positions"]["open"] == len(stay), m["positions"]
    except AssertionError as e:
        raise AssertionError("%s\n\n==== system dump ====\n%s" % (e, sysm.dump())) from None
    finally:
        sysm.close()
