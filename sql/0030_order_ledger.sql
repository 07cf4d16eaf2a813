-- Issue 12, item 1: the order path's cost flat over the trading day.
--
-- The locked decision read every allowed decision of the account's trading day (with each
-- one's newest outcome) to count today's trades and find the orders in flight: each order
-- got slower as the day went on. Two tables now hold the answer, kept by the database itself
-- (triggers on INSERT into risk_decisions and order_outcomes, in the inserting transaction:
-- any code that appends audit rows keeps them right; the audit tables stay append-only):
--
--   account_day_trades  per account and trading day: the trades counted toward
--                       max_daily_trades (allowed, non-dry-run decisions whose newest outcome
--                       is missing, `unknown` or `accepted`).
--   orders_in_flight    one row per counted decision that may still be on its way: no outcome
--                       yet, `unknown` (until the reconciler resolves it), or `accepted` until
--                       the account state shows its broker order id. `broker_rejected`,
--                       `not_sent` and `not_placed` delete the row and uncount the trade. The
--                       locked read deletes the rows it finds settled: an accepted order,
--                       once its answer is older than any state a decision may still use
--                       (every such state shows it; another replica's older state may not,
--                       until then); one without a broker id after the horizon; one of an
--                       earlier day.
--                       Working state, not audit. The read looks only at the orders without a
--                       broker id and those answered after its account state was fetched.
--
-- A decision's outcome is its newest order_outcomes row (sql/0029): the outcome trigger
-- recomputes the decision's state from its rows (at most two) instead of trusting the order
-- in which transactions commit. Writers of one account are serialized by the audit chain's
-- head row (sql/0028, locked by the BEFORE INSERT trigger), so these AFTER triggers see every
-- earlier row of the account committed.
--
-- order_path_inputs(...) is the decision's whole read in one call: optionally the account
-- lock (the key of gatekeeper.adapters.account_lock), the share locks on the global stop and
-- the protections, the duplicate lookup, then (a fresh snapshot, after the locks) the clock,
-- the start of the day (first sight recorded), the protections, the day's trade count and the
-- orders in flight. gatekeeper.adapters.decisions calls it.
--
-- Existing rows are counted here (a deploy in the middle of a trading day keeps every count):
-- the tables are locked first, so no decision or outcome is written meanwhile.

LOCK TABLE risk_decisions, order_outcomes IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE account_day_trades (
    account_id text NOT NULL,
    trading_day date NOT NULL,
    trades integer NOT NULL,
    PRIMARY KEY (account_id, trading_day)
)
-- updated at every counted decision and outcome: room on the page for HOT updates, and
-- vacuumed after every thousand dead versions rather than a fifth of the table
WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

CREATE TABLE orders_in_flight (
    -- risk_decisions.decision_id (no foreign key: rows come only from the triggers, and an
    -- audit row deleted by hand must stay deletable, so that `gatekeeper audit verify` reports it)
    decision_id uuid PRIMARY KEY,
    account_id text NOT NULL,
    trading_day date NOT NULL,
    -- risk_decisions.id: the order the decisions were made in
    decision_row_id bigint NOT NULL,
    reserved_orders jsonb NOT NULL,
    -- the newest outcome: NULL (none yet), 'unknown' or 'accepted'
    outcome text,
    broker_order_id text,
    -- no further outcome can come (accepted by the forward itself, or after an unknown)
    settled boolean NOT NULL DEFAULT false,
    -- the decision's time, or its newest outcome's
    since timestamptz NOT NULL,
    CONSTRAINT orders_in_flight_outcome_check CHECK (outcome IN ('unknown', 'accepted'))
)
-- every row is inserted, updated by its outcome and deleted within minutes: the dead versions
-- (and their index entries, which the locked read would step over) go after every thousand
WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
      autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000);

CREATE INDEX index_orders_in_flight_on_account_day ON orders_in_flight (account_id, trading_day);
-- the locked read: orders without a broker id (unresolved, or answered without one) ...
CREATE INDEX index_orders_in_flight_without_broker_id ON orders_in_flight (account_id, trading_day)
    WHERE broker_order_id IS NULL;
-- ... and those with one, by the time of their answer (only those answered after the
-- account state was fetched need a look; the older ones are deleted once settled)
CREATE INDEX index_orders_in_flight_by_answer ON orders_in_flight (account_id, since)
    WHERE broker_order_id IS NOT NULL;
-- the reconciler's work list (every account): decisions without an outcome or unknown
CREATE INDEX index_orders_in_flight_unresolved ON orders_in_flight (decision_row_id)
    WHERE outcome IS NULL OR outcome = 'unknown';

CREATE FUNCTION order_ledger_decision() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO account_day_trades AS t (account_id, trading_day, trades)
    VALUES (NEW.account_id, NEW.trading_day, NEW.trade_count)
    ON CONFLICT (account_id, trading_day) DO UPDATE SET trades = t.trades + excluded.trades;
    INSERT INTO orders_in_flight
        (decision_id, account_id, trading_day, decision_row_id, reserved_orders, since)
    VALUES (NEW.decision_id, NEW.account_id, NEW.trading_day, NEW.id, NEW.reserved_orders,
            NEW.decided_at);
    RETURN NULL;
END;
$$;

CREATE FUNCTION order_ledger_outcome() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    d record;
    previous text;
    latest order_outcomes;
    was_counted boolean;
    counted boolean;
BEGIN
    SELECT r.account_id, r.trading_day, r.trade_count, r.id, r.reserved_orders INTO d
    FROM risk_decisions r
    WHERE r.decision_id = NEW.decision_id AND r.verdict = 'allow' AND r.trade_count > 0;
    IF NOT FOUND THEN
        RETURN NULL;  -- not a reservation
    END IF;
    SELECT o.outcome INTO previous FROM order_outcomes o
    WHERE o.decision_id = NEW.decision_id AND o.id <> NEW.id ORDER BY o.id DESC LIMIT 1;
    SELECT * INTO latest FROM order_outcomes o
    WHERE o.decision_id = NEW.decision_id ORDER BY o.id DESC LIMIT 1;
    was_counted := previous IS NULL OR previous IN ('accepted', 'unknown');
    counted := latest.outcome IN ('accepted', 'unknown');
    IF counted <> was_counted THEN
        INSERT INTO account_day_trades AS t (account_id, trading_day, trades)
        VALUES (d.account_id, d.trading_day,
                CASE WHEN counted THEN d.trade_count ELSE -d.trade_count END)
        ON CONFLICT (account_id, trading_day) DO UPDATE SET trades = t.trades + excluded.trades;
    END IF;
    IF NOT counted THEN
        DELETE FROM orders_in_flight WHERE decision_id = NEW.decision_id;
    ELSIF latest.id = NEW.id THEN
        -- (re)inserted: a late `unknown` after a resolution counts again, as the scan did
        INSERT INTO orders_in_flight AS f
            (decision_id, account_id, trading_day, decision_row_id, reserved_orders, outcome,
             broker_order_id, settled, since)
        VALUES (NEW.decision_id, d.account_id, d.trading_day, d.id, d.reserved_orders,
                latest.outcome, latest.broker_order_id,
                latest.outcome = 'accepted'
                    AND (latest.resolution IS NULL OR previous IS NOT NULL),
                latest.recorded_at)
        ON CONFLICT (decision_id) DO UPDATE
            SET outcome = excluded.outcome, broker_order_id = excluded.broker_order_id,
                settled = excluded.settled, since = excluded.since;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER risk_decisions_order_ledger AFTER INSERT ON risk_decisions
    FOR EACH ROW WHEN (NEW.verdict = 'allow' AND NEW.trade_count > 0)
    EXECUTE FUNCTION order_ledger_decision();
CREATE TRIGGER order_outcomes_order_ledger AFTER INSERT ON order_outcomes
    FOR EACH ROW EXECUTE FUNCTION order_ledger_outcome();

-- The rows already there.
CREATE TEMPORARY TABLE order_ledger_backfill ON COMMIT DROP AS
SELECT d.decision_id, d.account_id, d.trading_day, d.id, d.trade_count, d.reserved_orders,
       d.decided_at, o.outcome, o.broker_order_id, o.recorded_at,
       coalesce(o.outcome = 'accepted' AND (o.resolution IS NULL OR o.outcomes > 1), false)
           AS settled
FROM risk_decisions d
LEFT JOIN (
    SELECT DISTINCT ON (decision_id) decision_id, outcome, broker_order_id, recorded_at,
           resolution, count(*) OVER (PARTITION BY decision_id) AS outcomes
    FROM order_outcomes ORDER BY decision_id, id DESC
) AS o USING (decision_id)
WHERE d.verdict = 'allow' AND d.trade_count > 0
  AND (o.outcome IS NULL OR o.outcome IN ('accepted', 'unknown'));

INSERT INTO account_day_trades (account_id, trading_day, trades)
SELECT account_id, trading_day, sum(trade_count) FROM order_ledger_backfill
GROUP BY account_id, trading_day;

-- Unresolved ones of any day (the reconciler and the status route list them); accepted ones
-- of yesterday on (older ones no longer count as in flight).
INSERT INTO orders_in_flight
    (decision_id, account_id, trading_day, decision_row_id, reserved_orders, outcome,
     broker_order_id, settled, since)
SELECT decision_id, account_id, trading_day, id, reserved_orders, outcome, broker_order_id,
       settled, coalesce(recorded_at, decided_at)
FROM order_ledger_backfill
WHERE outcome IS DISTINCT FROM 'accepted'
   OR trading_day >= (now() AT TIME ZONE 'America/New_York')::date - 1;

-- The first counted decision of the account (today or yesterday, New York) that a submission
-- repeats: one carrying any of p_identifiers, or (p_window > 0) one with the same fingerprint
-- decided within p_window seconds; only while it is unresolved or accepted. With its newest
-- outcome. (gatekeeper.adapters.outcomes.find_duplicate; order_path_inputs below.)
CREATE FUNCTION first_submission(
    p_account text, p_identifiers text[], p_fingerprint text, p_window float8
) RETURNS TABLE (decision_id uuid, outcome text, http_status integer, broker_order_id text,
                 answer_body text)
LANGUAGE sql STABLE AS $$
    SELECT d.decision_id, o.outcome, o.http_status, o.broker_order_id, o.answer_body
    FROM risk_decisions d
    LEFT JOIN LATERAL (SELECT * FROM order_outcomes lo WHERE lo.decision_id = d.decision_id
                       ORDER BY lo.id DESC LIMIT 1) AS o ON true
    WHERE d.account_id = p_account AND d.verdict = 'allow' AND d.trade_count > 0
      AND d.trading_day >= (now() AT TIME ZONE 'America/New_York')::date - 1
      AND ((cardinality(p_identifiers) > 0
            AND d.detail -> 'external_identifiers' ?| p_identifiers)
           OR (p_window > 0 AND d.detail ->> 'fingerprint' = p_fingerprint
               AND d.decided_at > now() - make_interval(secs => p_window)))
      AND (o.outcome IS NULL OR o.outcome IN ('accepted', 'unknown'))
    ORDER BY d.id LIMIT 1
$$;

-- The composite of one decision's inputs (column names are what the Python code reads).
CREATE TYPE order_path_inputs AS (
    now timestamptz,
    day date,
    start_of_day_nlv numeric,
    start_of_day_source text,
    start_of_day_deposits numeric,
    protections portfolio_protections[],
    global_stop_mode text,
    trades_today integer,
    -- the orders in flight (core Order dumps), one JSON array
    in_flight jsonb,
    -- the first submission this one repeats (see gatekeeper.adapters.outcomes.find_duplicate)
    duplicate_decision_id uuid,
    duplicate_outcome text,
    duplicate_http_status integer,
    duplicate_broker_order_id text,
    duplicate_answer_body text,
    -- with p_seen NULL: every order that may be in flight, as [broker order id or null, the
    -- orders], in decision order; the caller drops those whose id its state shows (a set
    -- lookup in the caller instead of the state's ids sent and hashed here)
    in_flight_unless_shown jsonb
);

-- One decision's read (docs in gatekeeper/adapters/decisions.py, decision_inputs):
--   p_lock      take the account lock first (as gatekeeper.adapters.account_lock)
--   p_hold      share-lock the global stop and the protections until commit, and delete the
--               settled orders_in_flight rows (the reserving path)
--   p_clock     a clock instead of now() (tests)
--   p_seen      the broker order ids the account state shows, separated by newlines (one
--               text: a text[] of the day's ids costs milliseconds to send and to decode at
--               every decision; split and hashed only when some order needs looking up).
--               NULL: the caller looks them up itself (in_flight_unless_shown), and an
--               accepted order's row goes once settled whether or not this state shows it
--   p_state_age how long before the clock that state was fetched, with a margin for the hosts'
--               clocks (NULL: unknown). An order answered before it is in the state (the broker
--               lists the day's orders in any status), so only those answered after it are
--               looked up in p_seen; with NULL, all are.
--   p_horizon   how long an accepted order without a broker id counts as in flight
--   p_settle    how long after its answer an accepted order the state shows keeps its row:
--               another decision may still use an older state, fetched before the order was
--               answered (the row is what counts it there); longer than any state a decision
--               may use plus the time a state read can take
--   p_identifiers, p_fingerprint, p_window: the duplicate lookup (skipped when both empty/0);
--               when a duplicate is found nothing else is read or recorded (only the clock
--               and its trading day are returned with it).
-- VOLATILE plpgsql: each statement takes a fresh snapshot, so the reads see everything
-- committed before the locks were granted.
CREATE FUNCTION order_path_inputs(
    p_account text, p_nlv numeric, p_day date, p_net_deposits numeric, p_clock timestamptz,
    p_seen text, p_state_age interval, p_horizon interval, p_settle interval,
    p_hold boolean, p_lock boolean, p_identifiers text[], p_fingerprint text, p_window float8
) RETURNS order_path_inputs
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
-- generic plans: the partial indexes above suit any value, and no statement is planned again
-- at every call
SET search_path = pg_catalog, public SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    result order_path_inputs;
    v_now timestamptz;
    v_day date;
    v_state_at timestamptz;
BEGIN
    IF p_lock THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('gatekeeper.account:' || p_account, 0));
    END IF;
    IF p_hold THEN
        -- an emergency stop takes these FOR UPDATE: it commits before or after this
        -- decision, never during it
        PERFORM 1 FROM global_emergency_stop FOR SHARE;
        PERFORM 1 FROM portfolio_protections WHERE account_id = p_account ORDER BY id FOR SHARE;
    END IF;
    v_now := coalesce(p_clock, now());
    v_day := (v_now AT TIME ZONE 'America/New_York')::date;
    v_state_at := coalesce(v_now - p_state_age, '-infinity');
    result.now := v_now;
    result.day := v_day;
    IF cardinality(p_identifiers) > 0 OR p_window > 0 THEN
        SELECT * INTO result.duplicate_decision_id, result.duplicate_outcome,
             result.duplicate_http_status, result.duplicate_broker_order_id,
             result.duplicate_answer_body
        FROM first_submission(p_account, p_identifiers, p_fingerprint, p_window);
        IF result.duplicate_decision_id IS NOT NULL THEN
            RETURN result;
        END IF;
    END IF;
    WITH recorded AS (
        SELECT s.net_liquidating_value, s.source, s.net_deposits_at_start
        FROM account_day_start s
        WHERE s.account_id = p_account AND s.trading_day = v_day
    ),
    inserted AS (
        INSERT INTO account_day_start
            (account_id, trading_day, net_liquidating_value, source, net_deposits_at_start)
        SELECT p_account, v_day, p_nlv, 'first_sight', p_net_deposits
        WHERE v_day = coalesce(p_day, v_day)
          AND NOT EXISTS (SELECT 1 FROM recorded WHERE source = 'broker_bod')
        ON CONFLICT (account_id, trading_day, source) DO NOTHING
        RETURNING net_liquidating_value, source, net_deposits_at_start
    ),
    start_of_day AS (
        SELECT * FROM (SELECT * FROM inserted UNION ALL SELECT * FROM recorded) AS s
        ORDER BY (s.source = 'broker_bod') DESC LIMIT 1
    ),
    candidates AS (
        SELECT f.decision_row_id, f.broker_order_id, f.reserved_orders FROM orders_in_flight f
        WHERE f.account_id = p_account AND f.trading_day = v_day
          AND f.broker_order_id IS NULL
          AND (f.outcome IS DISTINCT FROM 'accepted' OR f.since > v_now - p_horizon)
        UNION ALL
        SELECT f.decision_row_id, f.broker_order_id, f.reserved_orders FROM orders_in_flight f
        WHERE f.account_id = p_account AND f.broker_order_id IS NOT NULL
          AND f.since > v_state_at AND f.trading_day = v_day
    ),
    flight AS (
        SELECT c.decision_row_id, c.reserved_orders FROM candidates c
        WHERE p_seen IS NOT NULL
          AND (c.broker_order_id IS NULL
               OR c.broker_order_id NOT IN (SELECT unnest(string_to_array(p_seen, E'\n'))))
    ),
    cleared_with_id AS (
        DELETE FROM orders_in_flight f
        WHERE p_hold AND f.decision_id IN (
            SELECT h.decision_id FROM orders_in_flight h
            WHERE h.account_id = p_account AND h.broker_order_id IS NOT NULL
              AND h.since <= v_now - p_settle AND h.outcome = 'accepted'
              AND (h.trading_day < v_day
                   OR (h.settled
                       AND (p_seen IS NULL
                            OR h.broker_order_id IN
                               (SELECT unnest(string_to_array(p_seen, E'\n'))))))
            FOR UPDATE SKIP LOCKED)
    ),
    cleared_without_id AS (
        DELETE FROM orders_in_flight f
        WHERE p_hold AND f.decision_id IN (
            SELECT h.decision_id FROM orders_in_flight h
            WHERE h.account_id = p_account AND h.broker_order_id IS NULL
              AND h.outcome = 'accepted'
              AND (h.trading_day < v_day OR (h.settled AND h.since <= v_now - p_horizon))
            FOR UPDATE SKIP LOCKED)
    )
    SELECT (SELECT net_liquidating_value FROM start_of_day),
           (SELECT source FROM start_of_day),
           (SELECT net_deposits_at_start FROM start_of_day),
           (SELECT coalesce(array_agg(p ORDER BY p.id), '{}') FROM portfolio_protections p
            WHERE p.account_id = p_account),
           (SELECT coalesce(g.active_mode, '') FROM global_emergency_stop g),
           coalesce((SELECT t.trades FROM account_day_trades t
                     WHERE t.account_id = p_account AND t.trading_day = v_day), 0),
           (SELECT coalesce(jsonb_agg(e.item ORDER BY f.decision_row_id, e.n), '[]')
            FROM flight f,
                 jsonb_array_elements(f.reserved_orders) WITH ORDINALITY AS e (item, n)),
           (SELECT jsonb_agg(jsonb_build_array(c.broker_order_id, c.reserved_orders)
                             ORDER BY c.decision_row_id)
            FROM candidates c WHERE p_seen IS NULL)
    INTO result.start_of_day_nlv, result.start_of_day_source, result.start_of_day_deposits,
         result.protections, result.global_stop_mode, result.trades_today, result.in_flight,
         result.in_flight_unless_shown;
    RETURN result;
END;
$$;

-- The same with the state's order ids as an array.
CREATE FUNCTION order_path_inputs(
    p_account text, p_nlv numeric, p_day date, p_net_deposits numeric, p_clock timestamptz,
    p_seen text[], p_state_age interval, p_horizon interval, p_settle interval,
    p_hold boolean, p_lock boolean, p_identifiers text[], p_fingerprint text, p_window float8
) RETURNS order_path_inputs
LANGUAGE sql VOLATILE AS $$
    SELECT order_path_inputs(p_account, p_nlv, p_day, p_net_deposits, p_clock,
        E'\n' || array_to_string(p_seen, E'\n') || E'\n', p_state_age, p_horizon, p_settle,
        p_hold, p_lock, p_identifiers, p_fingerprint, p_window)
$$;


DO $$
BEGIN
    REVOKE ALL ON FUNCTION order_path_inputs(text, numeric, date, numeric, timestamptz, text,
        interval, interval, interval, boolean, boolean, text[], text, float8) FROM PUBLIC;
    REVOKE ALL ON FUNCTION order_path_inputs(text, numeric, date, numeric, timestamptz, text[],
        interval, interval, interval, boolean, boolean, text[], text, float8) FROM PUBLIC;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT SELECT ON account_day_trades, orders_in_flight TO gatekeeper_app;
        GRANT EXECUTE ON FUNCTION first_submission(text, text[], text, float8)
            TO gatekeeper_app;
        GRANT EXECUTE ON FUNCTION order_path_inputs(text, numeric, date, numeric, timestamptz,
            text, interval, interval, interval, boolean, boolean, text[], text, float8)
            TO gatekeeper_app;
        GRANT EXECUTE ON FUNCTION order_path_inputs(text, numeric, date, numeric, timestamptz,
            text[], interval, interval, interval, boolean, boolean, text[], text, float8)
            TO gatekeeper_app;
    END IF;
END;
$$;
