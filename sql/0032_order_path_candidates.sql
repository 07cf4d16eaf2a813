-- The orders that may be in flight, as the caller looks them up itself (p_seen NULL): two
-- parallel arrays instead of one JSON document, so the caller reads the broker order ids of
-- them all (the state shows most: a set lookup each) and parses only the orders of those it
-- does not show. One JSON document of every candidate's orders cost the gatekeeper a parse of
-- all of them at every decision: a fifth of an allowed order's CPU while a busy account's
-- orders wait for the next snapshot (issue 12). in_flight_unless_shown is left NULL.

ALTER TYPE order_path_inputs
    ADD ATTRIBUTE candidate_order_ids text[],  -- each candidate's broker order id (or NULL)
    ADD ATTRIBUTE candidate_orders text[];     -- its reserved orders, a JSON array, as text

CREATE OR REPLACE FUNCTION order_path_inputs(
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
           NULL,
           (SELECT array_agg(c.broker_order_id ORDER BY c.decision_row_id)
            FROM candidates c WHERE p_seen IS NULL),
           (SELECT array_agg(c.reserved_orders::text ORDER BY c.decision_row_id)
            FROM candidates c WHERE p_seen IS NULL)
    INTO result.start_of_day_nlv, result.start_of_day_source, result.start_of_day_deposits,
         result.protections, result.global_stop_mode, result.trades_today, result.in_flight,
         result.in_flight_unless_shown, result.candidate_order_ids, result.candidate_orders;
    RETURN result;
END;
$$;
