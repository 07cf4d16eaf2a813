-- Issue 11, items 1 and 2: outcomes reconciled, duplicates stopped.
--
-- order_outcomes held at most one row per decision. An `unknown` outcome (a timeout, a broken
-- connection, a replica that died before recording anything) is now resolved later by the
-- reconciler, which appends a second row: `accepted` (with the broker's order id) or
-- `not_placed` (the broker never placed it). A decision's outcome is its newest row. At most
-- one `unknown` row and at most one other row per decision, enforced here, so two replicas
-- can never both resolve one order.
--
-- answer_body: the broker's answer to an accepted order (or, once reconciled, the order as
-- the broker lists it), so a retried submission is answered from it (docs/order-path.md).
-- resolution: how the reconciler found the outcome (broker_order_id, external_identifier,
-- not_found); NULL on the answer the forward itself got. Both are chained (0028's canonical
-- form gains them at its end; NULL columns are left out, so every row written before keeps
-- its hash).

ALTER TABLE order_outcomes DROP CONSTRAINT order_outcomes_decision_id_key;
ALTER TABLE order_outcomes DROP CONSTRAINT order_outcomes_outcome_check;
ALTER TABLE order_outcomes ADD CONSTRAINT order_outcomes_outcome_check
    CHECK (outcome IN ('accepted', 'broker_rejected', 'unknown', 'not_sent', 'not_placed'));
ALTER TABLE order_outcomes ADD COLUMN answer_body text, ADD COLUMN resolution text;
CREATE UNIQUE INDEX order_outcomes_one_unknown_and_one_answer
    ON order_outcomes (decision_id, (outcome = 'unknown'));

CREATE OR REPLACE FUNCTION audit_body_order_outcomes(r order_outcomes) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT audit_field('id', r.id::text)
        || audit_field('decision_id', r.decision_id::text)
        || audit_field('account_id', r.account_id)
        || audit_field('outcome', r.outcome)
        || audit_field('http_status', r.http_status::text)
        || audit_field('broker_order_id', r.broker_order_id)
        || audit_field('recorded_at', audit_ts(r.recorded_at))
        || audit_field('answer_body', r.answer_body)
        || audit_field('resolution', r.resolution)
$$;

-- Who is resolving which unresolved order: a replica claims a decision for lease_seconds by
-- inserting or taking over an expired row, so two replicas never look up the same order at
-- once. Working state, not audit: rows are updated and deleted.
CREATE TABLE order_reconcile_leases (
    decision_id uuid PRIMARY KEY REFERENCES risk_decisions (decision_id),
    holder text NOT NULL,
    leased_until timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON order_reconcile_leases TO gatekeeper_app;
    END IF;
END;
$$;
