-- The order path's audit trail and its reservations, all append-only (enforced by triggers
-- using forbid_append_only_changes() from 0003):
--   risk_decisions     one row per order-path decision (allowed, rejected, error), committed
--                      before the bot gets its answer. An allowed non-dry-run decision is also
--                      the reservation: its trade_count and orders count toward today's trades
--                      and in-flight exposure until its outcome says otherwise.
--   order_outcomes     what the broker answered for a forwarded order (at most one per decision).
--   account_day_start  start-of-day net liquidating value per account and trading day
--                      (America/New_York), recorded at the first sight of the day.
-- Secrets (bots' tokens) are never stored here.

CREATE TABLE risk_decisions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id uuid NOT NULL UNIQUE,
    account_id text NOT NULL,
    route_kind text NOT NULL,
    verdict text NOT NULL,
    codes text[] NOT NULL DEFAULT '{}',
    notes text[] NOT NULL DEFAULT '{}',
    message text NOT NULL,
    detail jsonb NOT NULL,
    trading_day date NOT NULL,
    trade_count integer NOT NULL DEFAULT 0,
    -- the orders reserved as in flight (core Order dumps); empty unless allowed
    reserved_orders jsonb NOT NULL DEFAULT '[]',
    replaces_order_id text,
    latency_ms numeric(12, 3) NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT risk_decisions_verdict_check CHECK (verdict IN ('allow', 'reject', 'error')),
    CONSTRAINT risk_decisions_trade_count_check CHECK (trade_count >= 0)
);

CREATE INDEX index_risk_decisions_on_account_day ON risk_decisions (account_id, trading_day);
CREATE INDEX index_risk_decisions_on_decided_at ON risk_decisions (decided_at);

CREATE TABLE order_outcomes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id uuid NOT NULL UNIQUE REFERENCES risk_decisions (decision_id),
    account_id text NOT NULL,
    -- accepted (2xx), broker_rejected (4xx/5xx answer), unknown (sent, no answer: counted),
    -- not_sent (the broker could not be reached)
    outcome text NOT NULL,
    http_status integer,
    broker_order_id text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_outcomes_outcome_check
        CHECK (outcome IN ('accepted', 'broker_rejected', 'unknown', 'not_sent'))
);

CREATE INDEX index_order_outcomes_on_account_id ON order_outcomes (account_id);

CREATE TABLE account_day_start (
    account_id text NOT NULL,
    trading_day date NOT NULL,
    net_liquidating_value numeric(20, 4) NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, trading_day)
);

CREATE TRIGGER risk_decisions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON risk_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();
CREATE TRIGGER order_outcomes_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON order_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();
CREATE TRIGGER account_day_start_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON account_day_start
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT SELECT, INSERT ON risk_decisions, order_outcomes, account_day_start
            TO gatekeeper_app;
    END IF;
END;
$$;
