-- The retry lookup by key (issue 12: the locked decision reads O(what it looks for), not
-- O(today's decisions)). first_submission found an order's earlier submission by scanning every
-- allowed decision of the account since yesterday and testing its detail's external
-- identifiers and fingerprint: for a bot that names its orders (external-identifier) each
-- order read all of the day's decisions again, 2.5 times slower at 5,000 than at none
-- (tests/bench/test_bench_ledger.py, "named"). Now each allowed decision's keys are written
-- beside it by a trigger, and the lookup is an index probe per key.
--
-- Keys: 'id:' || each external identifier of the decision's orders (the bot's own or the one
-- the gatekeeper gave it), 'fp:' || the fingerprint of its body. A derived index of
-- risk_decisions (like orders_in_flight), not an audit table: the trigger alone writes it.

-- No decision is inserted while the keys of the existing ones are copied.
LOCK TABLE risk_decisions IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE order_submission_keys (
    account_id text NOT NULL,
    key text NOT NULL,
    decision_row_id bigint NOT NULL,  -- risk_decisions.id
    decided_at timestamptz NOT NULL,
    trading_day date NOT NULL,
    PRIMARY KEY (account_id, key, decision_row_id)
);

CREATE FUNCTION submission_keys(p_detail jsonb) RETURNS SETOF text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public AS $$
    SELECT 'id:' || i
    FROM jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(p_detail -> 'external_identifiers') = 'array'
             THEN p_detail -> 'external_identifiers' ELSE '[]'::jsonb END) AS i
    UNION
    SELECT 'fp:' || (p_detail ->> 'fingerprint')
    WHERE coalesce(p_detail ->> 'fingerprint', '') <> ''
$$;

CREATE FUNCTION order_submission_keys_decision() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO order_submission_keys
        (account_id, key, decision_row_id, decided_at, trading_day)
    SELECT NEW.account_id, k, NEW.id, NEW.decided_at, NEW.trading_day
    FROM submission_keys(NEW.detail) AS k
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;

-- Only what first_submission can return: allowed decisions that reserved a trade.
CREATE TRIGGER risk_decisions_submission_keys
    AFTER INSERT ON risk_decisions
    FOR EACH ROW WHEN (NEW.verdict = 'allow' AND NEW.trade_count > 0)
    EXECUTE FUNCTION order_submission_keys_decision();

-- The decisions a retry can still repeat (since yesterday, as first_submission looks).
INSERT INTO order_submission_keys (account_id, key, decision_row_id, decided_at, trading_day)
SELECT d.account_id, k, d.id, d.decided_at, d.trading_day
FROM risk_decisions d, submission_keys(d.detail) AS k
WHERE d.verdict = 'allow' AND d.trade_count > 0
  AND d.trading_day >= (now() AT TIME ZONE 'America/New_York')::date - 1
ON CONFLICT DO NOTHING;

-- Same answer as sql/0030's: the account's first allowed decision since yesterday that names
-- one of p_identifiers, or (p_window > 0) has p_fingerprint and is younger than p_window
-- seconds, and whose newest outcome is none, accepted or unknown.
CREATE OR REPLACE FUNCTION first_submission(
    p_account text, p_identifiers text[], p_fingerprint text, p_window float8
) RETURNS TABLE (decision_id uuid, outcome text, http_status integer, broker_order_id text,
                 answer_body text)
LANGUAGE sql STABLE AS $$
    SELECT d.decision_id, o.outcome, o.http_status, o.broker_order_id, o.answer_body
    FROM (
        SELECT k.decision_row_id FROM order_submission_keys k
        WHERE k.account_id = p_account
          AND k.key = ANY (ARRAY(SELECT 'id:' || i FROM unnest(p_identifiers) AS i))
          AND k.trading_day >= (now() AT TIME ZONE 'America/New_York')::date - 1
        UNION
        SELECT k.decision_row_id FROM order_submission_keys k
        WHERE p_window > 0 AND k.account_id = p_account AND k.key = 'fp:' || p_fingerprint
          AND k.decided_at > now() - make_interval(secs => p_window)
          AND k.trading_day >= (now() AT TIME ZONE 'America/New_York')::date - 1
    ) AS m
    JOIN risk_decisions d ON d.id = m.decision_row_id
    LEFT JOIN LATERAL (SELECT * FROM order_outcomes lo WHERE lo.decision_id = d.decision_id
                       ORDER BY lo.id DESC LIMIT 1) AS o ON true
    WHERE o.outcome IS NULL OR o.outcome IN ('accepted', 'unknown')
    ORDER BY d.id LIMIT 1
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT SELECT ON order_submission_keys TO gatekeeper_app;
    END IF;
END;
$$;
