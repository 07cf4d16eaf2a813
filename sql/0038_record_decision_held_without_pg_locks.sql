-- record_decision_held (sql/0031, sql/0036) checked that the session holds the account lock by
-- reading pg_locks, which copies the whole lock table under every lock-manager partition's
-- lock: 0.4 to 0.6 ms of each allowed order at 16 connections, in the one Postgres process
-- every decision of the account waits for. The check is now the transfer itself: the lock is
-- taken at transaction level (granted at once to a session that holds it; a session that
-- does not waits for it like any other) and the session's hold is let go, which
-- pg_advisory_unlock says it could not do when there was none: then the function raises, and
-- the abort lets the transaction-level hold go. Nothing is recorded without the lock, as
-- before. When the global stop moved (false, nothing recorded) the session's hold is taken
-- back, granted at once: the caller reads again under it, as before.

CREATE OR REPLACE FUNCTION record_decision_held(
    p_global_stop_mode text,
    p_decision_id uuid, p_account text, p_route_kind text, p_verdict text, p_codes text[],
    p_notes text[], p_message text, p_detail jsonb, p_trading_day date, p_trade_count integer,
    p_reserved_orders jsonb, p_replaces_order_id text, p_latency_ms numeric
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public AS $$
DECLARE
    v_key bigint := hashtextextended('gatekeeper.account:' || p_account, 0);
BEGIN
    PERFORM pg_advisory_xact_lock(v_key);
    IF NOT pg_advisory_unlock(v_key) THEN
        RAISE EXCEPTION 'record_decision_held: the account lock of % is not held', p_account;
    END IF;
    IF (SELECT coalesce(active_mode, '') FROM global_emergency_stop)
            IS DISTINCT FROM p_global_stop_mode THEN
        PERFORM pg_advisory_lock(v_key);
        RETURN false;
    END IF;
    -- The row goes in under the account lock, held at transaction level only now: the
    -- commit releases it, once the row is visible to the next decision's read (sql/0036).
    INSERT INTO risk_decisions
        (decision_id, account_id, route_kind, verdict, codes, notes, message, detail,
         trading_day, trade_count, reserved_orders, replaces_order_id, latency_ms)
    VALUES (p_decision_id, p_account, p_route_kind, p_verdict, p_codes, p_notes, p_message,
            p_detail, p_trading_day, p_trade_count, p_reserved_orders, p_replaces_order_id,
            p_latency_ms);
    RETURN true;
END;
$$;
