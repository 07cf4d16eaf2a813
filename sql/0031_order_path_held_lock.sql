-- The order path in two round trips before forwarding (issue 12, item 3).
--
-- The decision used to run in an explicit transaction: BEGIN, the account lock and the inputs
-- (0030's order_path_inputs), the decision row, COMMIT: four round trips, the lock held until
-- COMMIT. Here the account lock is held by the SESSION instead (the same key as
-- gatekeeper.adapters.account_lock: session and transaction advisory locks on one key exclude
-- each other, so protection changes and emergency stops still wait for it), and each call
-- commits on its own:
--   1. order_path_inputs_held(...)  waits (at most p_wait_ms) for the forwarding locks, shared
--                                   (see below), then the account lock; keeps them; reads the
--                                   inputs after they were granted;
--   2. record_decision_held(...)    appends the decision row (0030's triggers keep the
--                                   ledger) unless the global emergency stop changed since
--                                   step 1 read it (then nothing is recorded: read again);
--   3. pg_advisory_unlock(account)  after the row committed (sent while the order is forwarded);
--   4. pg_advisory_unlock_all()     once the order was sent to the broker (or not forwarded).
-- A dead connection releases them all. The account lock is released only after the row is
-- visible, so no other decision of the account can read the ledger without it.
--
-- The forwarding locks close the gap between a decision's commit and its forward: an order is
-- sent while its decision holds 'gatekeeper.forwarding:<account>' and 'gatekeeper.forwarding:*'
-- shared; a manual emergency stop takes its account's (a global stop '*') exclusively before it
-- commits, so it waits for the orders already decided to be sent, and every order decided after
-- it sees it: nothing is forwarded after a committed stop. Lock order: forwarding, then account.

CREATE FUNCTION order_path_inputs_held(
    p_account text, p_nlv numeric, p_day date, p_net_deposits numeric, p_clock timestamptz,
    p_seen text[], p_state_age interval, p_horizon interval, p_settle interval,
    p_identifiers text[], p_fingerprint text, p_window float8, p_wait_ms integer
) RETURNS order_path_inputs
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public AS $$
BEGIN
    -- local to this call's own transaction: later statements keep the server's default
    PERFORM set_config('lock_timeout', greatest(p_wait_ms, 1) || 'ms', true);
    PERFORM pg_advisory_lock_shared(hashtextextended('gatekeeper.forwarding:*', 0));
    PERFORM pg_advisory_lock_shared(hashtextextended('gatekeeper.forwarding:' || p_account, 0));
    PERFORM pg_advisory_lock(hashtextextended('gatekeeper.account:' || p_account, 0));
    -- order_path_inputs is VOLATILE plpgsql too: its reads take their snapshots now, after
    -- the lock was granted.
    RETURN order_path_inputs(p_account, p_nlv, p_day, p_net_deposits, p_clock, p_seen,
        p_state_age, p_horizon, p_settle, true, false, p_identifiers, p_fingerprint,
        p_window);
END;
$$;

CREATE FUNCTION record_decision_held(
    p_global_stop_mode text,
    p_decision_id uuid, p_account text, p_route_kind text, p_verdict text, p_codes text[],
    p_notes text[], p_message text, p_detail jsonb, p_trading_day date, p_trade_count integer,
    p_reserved_orders jsonb, p_replaces_order_id text, p_latency_ms numeric
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
          AND objsubid = 1 AND mode = 'ExclusiveLock'
          AND ((classid::bigint << 32) | objid::bigint)
              = hashtextextended('gatekeeper.account:' || p_account, 0)
    ) THEN
        RAISE EXCEPTION 'record_decision_held: the account lock of % is not held', p_account;
    END IF;
    IF (SELECT coalesce(active_mode, '') FROM global_emergency_stop)
            IS DISTINCT FROM p_global_stop_mode THEN
        RETURN false;
    END IF;
    INSERT INTO risk_decisions
        (decision_id, account_id, route_kind, verdict, codes, notes, message, detail,
         trading_day, trade_count, reserved_orders, replaces_order_id, latency_ms)
    VALUES (p_decision_id, p_account, p_route_kind, p_verdict, p_codes, p_notes, p_message,
            p_detail, p_trading_day, p_trade_count, p_reserved_orders, p_replaces_order_id,
            p_latency_ms);
    RETURN true;
END;
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT EXECUTE ON FUNCTION order_path_inputs_held(text, numeric, date, numeric,
            timestamptz, text[], interval, interval, interval, text[], text, float8, integer)
            TO gatekeeper_app;
        GRANT EXECUTE ON FUNCTION record_decision_held(text, uuid, text, text, text, text[],
            text[], text, jsonb, date, integer, jsonb, text, numeric) TO gatekeeper_app;
    END IF;
END;
$$;

-- The decisions list (gatekeeper.adapters.decision_log) pages an account's rows newest first.
CREATE INDEX index_risk_decisions_on_account_id_desc ON risk_decisions (account_id, id DESC);
