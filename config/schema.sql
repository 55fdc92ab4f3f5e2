-- warden: the positions table watched by warden-position-monitor.
--
-- Idempotent: the monitor applies it at every connect when its
-- schema_file names this file (and scripts may apply it with psql -f).
-- Prices and quantities are numeric (exact). The monitor itself rejects
-- nonsense rules (a negative quantity, a long's stop above its entry...)
-- with a logged reason, so the table does not forbid them: one bad row
-- must not stop a batch insert of good ones, and the monitor stays the one
-- place that decides what it can watch. Status is constrained here, since
-- the exactly-once protocol depends on it.
--
-- Exits: open -> closing (exit_reason, client_order_id, closing_at, one
-- transaction) -> closed (exit_price, broker_order_id, closed_at, one
-- transaction). client_order_id is unique: the broker dedups on it.

CREATE TABLE IF NOT EXISTS positions (
    id               bigserial PRIMARY KEY,
    account          text NOT NULL,
    symbol           text NOT NULL,
    side             text NOT NULL,                 -- 'long' or 'short'
    quantity         numeric NOT NULL,
    entry_price      numeric NOT NULL,
    stop_loss        numeric,                       -- NULL: no stop loss
    take_profit      numeric,                       -- NULL: no take profit
    trailing_kind    text,                          -- 'percent' | 'absolute' | NULL
    trailing_stop    numeric,                       -- percent or price distance
    water_mark       numeric,                       -- high (long) / low (short) water mark
    max_holding      interval,                      -- NULL: no limit
    underlying       text,                          -- symbol watched by underlying_stop
    underlying_stop  numeric,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'open'
                     CONSTRAINT positions_status_check
                     CHECK (status IN ('open', 'closing', 'closed')),
    exit_reason      text,
    exit_price       numeric,
    closing_at       timestamptz,
    closed_at        timestamptz,
    client_order_id  text UNIQUE,
    broker_order_id  text
);

CREATE INDEX IF NOT EXISTS positions_active_idx ON positions (id) WHERE status <> 'closed';

-- NOTIFY positions_changed with the id on every insert and on every update
-- that changes what the monitor watches. Water-mark writes (the monitor's
-- own batches) do not notify: the monitor already has them.
CREATE OR REPLACE FUNCTION positions_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND
       ROW(NEW.account, NEW.symbol, NEW.side, NEW.quantity, NEW.entry_price, NEW.stop_loss,
           NEW.take_profit, NEW.trailing_kind, NEW.trailing_stop, NEW.max_holding,
           NEW.underlying, NEW.underlying_stop, NEW.opened_at, NEW.status)
       IS NOT DISTINCT FROM
       ROW(OLD.account, OLD.symbol, OLD.side, OLD.quantity, OLD.entry_price, OLD.stop_loss,
           OLD.take_profit, OLD.trailing_kind, OLD.trailing_stop, OLD.max_holding,
           OLD.underlying, OLD.underlying_stop, OLD.opened_at, OLD.status) THEN
        RETURN NEW;
    END IF;
    PERFORM pg_notify('positions_changed', NEW.id::text);
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER positions_notify_trg
    AFTER INSERT OR UPDATE ON positions
    FOR EACH ROW EXECUTE FUNCTION positions_notify();
