"""Workers' output: a 10 MB line is cut and marked, a flood costs bounded
memory, a stalled reader of warden's stdout costs dropped lines (counted),
and through all of it warden keeps serving."""
import time

from wardenlib import MARGIN_S, rss_kb, worker

RSS_LIMIT_KB = 64 * 1024
MARK = "[line truncated]"  # supervisor/logcap.h SUP_LOG_TRUNC_MARK
LINE_MAX = 16 * 1024  # [supervisor] log_line_max default


def responsive(warden, bound_s=1.0):
    t0 = time.monotonic()
    assert warden.ctl("ping", json=False).rc == 0
    took = time.monotonic() - t0
    assert took < bound_s, "ping took %.2fs" % took


def test_long_line_cut_and_marked(warden):
    warden.start({"worker:big": worker("--long-line", 10 * 1024 * 1024, "--print", "after the long line")})
    pid = warden.status("big")["pid"]
    warden.wait_until(lambda: any(l["line"] == "after the long line" and l["stream"] == "stdout"
                                  for l in warden.logs("big")), MARGIN_S,
                      "the line printed after the long one")
    lines = [l for l in warden.logs("big") if l["stream"] == "stdout"]
    longs = [l for l in lines if l["line"].startswith("LLLL")]
    assert len(longs) == 1, [l["line"][:40] for l in lines]
    text = longs[0]["line"]
    # Cut to log_line_max (plus the marker), not 10 MB, and marked as cut.
    assert len(text) <= LINE_MAX + len(MARK) + 2, len(text)
    assert len(text) >= LINE_MAX // 2, len(text)
    assert MARK in text, "no truncation marker in `wardenctl logs`: ...%r" % text[-40:]
    # The rest of the long line was discarded, not split into more lines.
    assert [l["line"] for l in lines if not l["line"].startswith("LLLL")] == ["after the long line"]
    # On warden's stdout too, marked.
    out = warden.stdout_text()
    stamped = [l for l in out.splitlines() if "big[%d] stdout: LLLL" % pid in l]
    assert len(stamped) == 1 and stamped[0].endswith(MARK), stamped[0][-60:] if stamped else out[-500:]
    assert len(stamped[0]) < LINE_MAX + 200
    assert rss_kb(warden.pid) < RSS_LIMIT_KB
    responsive(warden)
    assert warden.status("big")["state"] == "RUNNING"
    warden.stop()


def test_flood_keeps_rss_bounded(warden):
    rate = 4 * 1024 * 1024  # bytes per second, ~40k lines/s
    warden.start({"worker:flood": worker("--flood", rate), "worker:quiet": worker()})
    time.sleep(1.0)
    samples = []
    t_end = time.monotonic() + 5.0
    while time.monotonic() < t_end:
        samples.append(rss_kb(warden.pid))
        responsive(warden, 2.0)
        time.sleep(0.5)
    written = warden.status("flood")["metrics"].get("testworker_flood_bytes_total", 0)
    assert written > 8 * 1024 * 1024, "the flood did not flow: %d bytes" % written
    assert max(samples) < RSS_LIMIT_KB, samples
    # Not growing with what was written (> 8 MB during the sampling).
    assert samples[-1] - samples[0] < 8 * 1024, samples
    st = warden.status()
    assert st["flood"]["state"] == "RUNNING" and st["quiet"]["state"] == "RUNNING", st
    assert st["flood"]["restarts"] == 0 and st["quiet"]["restarts"] == 0
    lines = warden.logs("flood", 5)
    assert len(lines) == 5 and all(l["line"].startswith("flood ") for l in lines), lines
    warden.stop()


def test_stalled_stdout_reader_drops_lines_not_the_loop(warden):
    # warden's stdout is a pipe nobody reads: once it is full, lines are
    # dropped and counted; the loop never blocks.
    warden.start({"worker:flood": worker("--flood", 2 * 1024 * 1024), "worker:quiet": worker()},
                 stdout_pipe=True)
    warden.wait_until(lambda: warden.sup()["log_lines_dropped"] > 1000, 10,
                      "lines to be dropped on the full stdout pipe")
    for _ in range(5):
        responsive(warden, 2.0)
        time.sleep(0.3)
    st = warden.status()
    assert all(w["state"] == "RUNNING" and w["restarts"] == 0 for w in st.values()), st
    assert rss_kb(warden.pid) < RSS_LIMIT_KB
    # The ring still has the newest lines.
    assert len(warden.logs("flood", 3)) == 3
    warden.stop()
