-- Issue 10, item 3: alerts (email, webhooks) through a durable outbox.
--
--   alert_events      what happened (stop triggered or cleared, daily-loss limit reached, a
--                     limit above its utilisation threshold, a burst of rejections, the risk
--                     path failing), written in the transaction of the change or decision that
--                     caused it. Append-only. dedup_key (when set) makes an alert that must go
--                     out once per account, limit and day (or window) a no-op the second time.
--   alert_deliveries  one row per event and channel (email, or a webhook by its configured
--                     name, never its URL), created by the delivery worker: its state, attempts
--                     and next attempt. Workers on every replica claim due rows with FOR UPDATE
--                     SKIP LOCKED and push next_attempt_at past their send timeout (a lease)
--                     before sending, so each message is sent once; failures are retried with
--                     exponential back-off up to a limit. last_error holds an error's type only.
-- Nothing here holds a secret: URLs, credentials and signing keys stay in the configuration.

CREATE TABLE alert_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    account_id text NOT NULL,
    protection_id bigint,
    dedup_key text UNIQUE,
    -- whether the account's protection(s) asked for email (email_alerts_enabled)
    email boolean NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_events_kind_check CHECK (kind IN (
        'stop_triggered', 'stop_cleared', 'daily_loss_limit_reached', 'limit_utilisation',
        'rejection_burst', 'risk_path_failed'
    ))
);

CREATE INDEX index_alert_events_on_created_at ON alert_events (created_at);

CREATE TRIGGER alert_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();

CREATE TABLE alert_deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id bigint NOT NULL REFERENCES alert_events (id),
    channel text NOT NULL,
    target text NOT NULL,
    -- pending (due at next_attempt_at), delivered, failed (gave up), skipped (not wanted)
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_deliveries_target_unique UNIQUE (event_id, channel, target),
    CONSTRAINT alert_deliveries_channel_check CHECK (channel IN ('email', 'webhook')),
    CONSTRAINT alert_deliveries_state_check
        CHECK (state IN ('pending', 'delivered', 'failed', 'skipped')),
    CONSTRAINT alert_deliveries_attempts_check CHECK (attempts >= 0)
);

CREATE INDEX index_alert_deliveries_due ON alert_deliveries (next_attempt_at)
    WHERE state = 'pending';

-- The rejection-burst alert counts an account's recent rejections inside the decision's
-- transaction: only rejections are indexed, by time.
CREATE INDEX index_risk_decisions_rejections_on_account_time
    ON risk_decisions (account_id, decided_at)
    WHERE verdict = 'reject';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT SELECT, INSERT ON alert_events TO gatekeeper_app;
        GRANT SELECT, INSERT, UPDATE ON alert_deliveries TO gatekeeper_app;
    END IF;
END;
$$;
