-- The account lock goes with the decision row's commit, not in a round trip of its own after
-- it. record_decision_held (sql/0031) appended the row under the session's account lock and
-- the gatekeeper let the lock go with a separate statement once the row was committed, so
-- the next decision of the account waited for that statement too: for the answer of the
-- commit to reach the gatekeeper, its event loop to get to it, and the unlock to reach
-- Postgres. Now the function takes the lock at transaction level as well and lets the
-- session's holds go: the commit releases it (Postgres releases a transaction's locks after
-- its commit is visible, so the next read sees the row), and nothing else needs to.
-- A decision that triggers a stop records its row in a transaction of its own (not through
-- this function): the gatekeeper still lets that one's lock go itself.

CREATE OR REPLACE FUNCTION record_decision_held(
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
    -- The row is in: the account lock now goes with this transaction's commit. Held at
    -- transaction level too (granted at once: this session holds it) and the session's
    -- hold let go, it is released by the commit itself, once the row is visible to the next
    -- decision's read. One session hold only: a read repeated after the global stop moved
    -- took the lock twice, and the gatekeeper lets the other go itself. (An error before
    -- here leaves the session's hold as it was; an abort after it releases the lock with
    -- nothing recorded, which the engine treats as any failure.)
    PERFORM pg_advisory_xact_lock(hashtextextended('gatekeeper.account:' || p_account, 0));
    PERFORM pg_advisory_unlock(hashtextextended('gatekeeper.account:' || p_account, 0));
    RETURN true;
END;
$$;
