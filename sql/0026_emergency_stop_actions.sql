-- Issue 10, items 1 and 2: the emergency stop acts (cancels working orders) and stops anything
-- (any account, or every account at once).
--
--   portfolio_protections.cancel_working_orders_on_stop
--                          when a stop on this protection becomes active, cancel the
--                          account's working orders that are not risk-reducing (default on).
--   global_emergency_stop  one row, always there: the global stop's state. Every order
--                          decision reads it (share-locked, like the protections), and a
--                          global stop takes it FOR UPDATE, so it binds every replica at
--                          commit. It cannot be deleted (trigger), only updated.
--   global_emergency_events append-only: every global stop triggered or cleared.
--   stop_cancel_runs       append-only: one row per stop event and account once the account's
--                          working orders were listed and the cancels sent (covered_by: the
--                          run that did the work when one run served several events).
--   stop_order_cancels     append-only: one row per working order a run looked at: cancelled,
--                          failed (with the broker's status), not_attempted, or kept
--                          (risk-reducing).
-- Secrets (bots' tokens, the gatekeeper's own OAuth credentials) are never stored here.

ALTER TABLE portfolio_protections
    ADD COLUMN cancel_working_orders_on_stop boolean NOT NULL DEFAULT true;

CREATE TABLE global_emergency_stop (
    id boolean PRIMARY KEY DEFAULT true,
    triggered_at timestamptz,
    triggered_by text,
    reason text,
    active_mode text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT global_emergency_stop_single_row_check CHECK (id),
    CONSTRAINT global_emergency_stop_mode_check CHECK (active_mode IN ('halt', 'reduce_only')),
    CONSTRAINT global_emergency_stop_state_check CHECK (
        (triggered_at IS NULL AND triggered_by IS NULL AND reason IS NULL
            AND active_mode IS NULL)
        OR (triggered_at IS NOT NULL AND triggered_by IS NOT NULL AND reason IS NOT NULL
            AND active_mode IS NOT NULL)
    )
);

INSERT INTO global_emergency_stop (id) VALUES (true);

CREATE TRIGGER global_emergency_stop_kept
    BEFORE DELETE OR TRUNCATE ON global_emergency_stop
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();

CREATE TABLE global_emergency_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event text NOT NULL,
    mode text,
    actor text NOT NULL,
    reason text,
    user_id bigint REFERENCES users (id),
    token_id bigint REFERENCES api_tokens (id),
    via text NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT global_emergency_events_event_check CHECK (event IN ('triggered', 'cleared')),
    CONSTRAINT global_emergency_events_mode_check
        CHECK (mode IS NULL OR mode IN ('halt', 'reduce_only')),
    CONSTRAINT global_emergency_events_via_check CHECK (via IN ('api', 'cli', 'system'))
);

CREATE TABLE stop_cancel_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    emergency_event_id bigint REFERENCES emergency_events (id),
    global_event_id bigint REFERENCES global_emergency_events (id),
    account_id text NOT NULL,
    -- whose credentials: the request that triggered an automatic stop, the gatekeeper's own
    -- OAuth client, or the first bot credential the broker confirmed after the stop
    credential text NOT NULL,
    covered_by bigint REFERENCES stop_cancel_runs (id),
    -- false when a cancel failed (the run is tried again, a few times)
    complete boolean NOT NULL,
    ran_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stop_cancel_runs_one_event_check
        CHECK ((emergency_event_id IS NULL) <> (global_event_id IS NULL)),
    CONSTRAINT stop_cancel_runs_credential_check
        CHECK (credential IN ('request', 'gatekeeper_oauth', 'bot'))
);

CREATE INDEX index_stop_cancel_runs_on_account_id ON stop_cancel_runs (account_id);

CREATE TABLE stop_order_cancels (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES stop_cancel_runs (id),
    emergency_event_id bigint REFERENCES emergency_events (id),
    global_event_id bigint REFERENCES global_emergency_events (id),
    account_id text NOT NULL,
    order_id text,
    outcome text NOT NULL,
    http_status integer,
    detail text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stop_order_cancels_outcome_check
        CHECK (outcome IN ('cancelled', 'failed', 'not_attempted', 'kept'))
);

CREATE INDEX index_stop_order_cancels_on_run_id ON stop_order_cancels (run_id);

CREATE TRIGGER global_emergency_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON global_emergency_events
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();
CREATE TRIGGER stop_cancel_runs_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON stop_cancel_runs
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();
CREATE TRIGGER stop_order_cancels_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON stop_order_cancels
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT SELECT, UPDATE ON global_emergency_stop TO gatekeeper_app;
        GRANT SELECT, INSERT ON global_emergency_events, stop_cancel_runs, stop_order_cancels
            TO gatekeeper_app;
    END IF;
END;
$$;
