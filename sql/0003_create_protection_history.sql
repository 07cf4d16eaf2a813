-- Append-only history: every change to a protection (who, when, old and new values) and every
-- emergency stop event (triggered / cleared, by whom, why). The database refuses UPDATE,
-- DELETE and TRUNCATE on these tables whoever asks; 0004 also withholds the privileges.

CREATE FUNCTION forbid_append_only_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TABLE protection_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    protection_id bigint NOT NULL REFERENCES portfolio_protections (id),
    account_id text NOT NULL,
    action text NOT NULL,
    -- The person or process named for the change (e.g. the seed's triggered_by / cleared_by).
    changed_by text NOT NULL,
    -- The authenticated user and token behind it; NULL for the CLI and the system.
    user_id bigint REFERENCES users (id),
    token_id bigint REFERENCES api_tokens (id),
    via text NOT NULL,
    old_values jsonb,
    new_values jsonb NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT protection_changes_action_check CHECK (
        action IN ('created', 'updated', 'emergency_stop_triggered', 'emergency_stop_cleared')
    ),
    CONSTRAINT protection_changes_via_check CHECK (via IN ('api', 'cli', 'system'))
);

CREATE INDEX index_protection_changes_on_protection_id ON protection_changes (protection_id);

CREATE TABLE emergency_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    protection_id bigint NOT NULL REFERENCES portfolio_protections (id),
    account_id text NOT NULL,
    event text NOT NULL,
    mode text,
    actor text NOT NULL,
    reason text,
    user_id bigint REFERENCES users (id),
    token_id bigint REFERENCES api_tokens (id),
    via text NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT emergency_events_event_check CHECK (event IN ('triggered', 'cleared')),
    CONSTRAINT emergency_events_mode_check CHECK (mode IS NULL OR mode IN ('halt', 'reduce_only')),
    CONSTRAINT emergency_events_via_check CHECK (via IN ('api', 'cli', 'system'))
);

CREATE INDEX index_emergency_events_on_protection_id ON emergency_events (protection_id);
CREATE INDEX index_emergency_events_on_account_id ON emergency_events (account_id);

CREATE TRIGGER protection_changes_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON protection_changes
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();
CREATE TRIGGER emergency_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON emergency_events
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_append_only_changes();
