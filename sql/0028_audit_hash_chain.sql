-- Issue 11, item 5: a tamper-evident audit trail. The rows of risk_decisions, order_outcomes,
-- protection_changes and emergency_events form one hash chain per account:
--
--   chain_seq   the row's position in its account's chain (1, 2, ...)
--   chain_prev  the chain_hash of the row before it (32 zero bytes for the first)
--   chain_hash  SHA-256 of the row's canonical form, which includes chain_prev
--
-- A BEFORE INSERT trigger fills them (whatever the inserting code sends, older releases
-- included) with the account's head row in audit_chain_heads locked FOR UPDATE until commit,
-- so two transactions can never link to the same predecessor (see audit_chain_append).
--
-- The canonical form (gatekeeper/adapters/audit_chain.py recomputes it in Python; docs/admin.md):
-- for 'table', 'chain_prev' (lower-case hex) and then each column in the order below, a field
--     name ':' octet_length(value) ':' value '\n'
-- with NULL columns left out; values: text as is, integers and numeric in their plain decimal
-- form (numeric keeps its stored scale), uuid lower-case, date YYYY-MM-DD, timestamptz in UTC as
-- YYYY-MM-DDTHH:MM:SS.ffffffZ, jsonb in Postgres's normalized text form, text[] as its element
-- count followed by ',' octet_length ':' element for each element ('-' for a NULL element).
-- UTF-8 throughout. chain_seq is not hashed: the links (chain_prev) carry the order.
--
-- Rows written before this migration start the chain: they are linked here, per account, in
-- the order they were written (their timestamp; on a tie protection change, emergency event,
-- decision, outcome; then id). An edit made to them before today cannot be detected.

CREATE FUNCTION audit_field(name text, value text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL THEN ''
                ELSE name || ':' || octet_length(value)::text || ':' || value || E'\n' END
$$;

CREATE FUNCTION audit_ts(value timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION audit_text_array(value text[]) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT cardinality(value)::text || coalesce(
        (SELECT string_agg(',' || coalesce(octet_length(e) || ':' || e, '-'), '' ORDER BY n)
         FROM unnest(value) WITH ORDINALITY AS u (e, n)),
        '')
$$;

CREATE FUNCTION audit_body_risk_decisions(r risk_decisions) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT audit_field('id', r.id::text)
        || audit_field('decision_id', r.decision_id::text)
        || audit_field('account_id', r.account_id)
        || audit_field('route_kind', r.route_kind)
        || audit_field('verdict', r.verdict)
        || audit_field('codes', audit_text_array(r.codes))
        || audit_field('notes', audit_text_array(r.notes))
        || audit_field('message', r.message)
        || audit_field('detail', r.detail::text)
        || audit_field('trading_day', to_char(r.trading_day, 'YYYY-MM-DD'))
        || audit_field('trade_count', r.trade_count::text)
        || audit_field('reserved_orders', r.reserved_orders::text)
        || audit_field('replaces_order_id', r.replaces_order_id)
        || audit_field('latency_ms', r.latency_ms::text)
        || audit_field('decided_at', audit_ts(r.decided_at))
$$;

CREATE FUNCTION audit_body_order_outcomes(r order_outcomes) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT audit_field('id', r.id::text)
        || audit_field('decision_id', r.decision_id::text)
        || audit_field('account_id', r.account_id)
        || audit_field('outcome', r.outcome)
        || audit_field('http_status', r.http_status::text)
        || audit_field('broker_order_id', r.broker_order_id)
        || audit_field('recorded_at', audit_ts(r.recorded_at))
$$;

CREATE FUNCTION audit_body_protection_changes(r protection_changes) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT audit_field('id', r.id::text)
        || audit_field('protection_id', r.protection_id::text)
        || audit_field('account_id', r.account_id)
        || audit_field('action', r.action)
        || audit_field('changed_by', r.changed_by)
        || audit_field('user_id', r.user_id::text)
        || audit_field('token_id', r.token_id::text)
        || audit_field('via', r.via)
        || audit_field('old_values', r.old_values::text)
        || audit_field('new_values', r.new_values::text)
        || audit_field('changed_at', audit_ts(r.changed_at))
$$;

CREATE FUNCTION audit_body_emergency_events(r emergency_events) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT audit_field('id', r.id::text)
        || audit_field('protection_id', r.protection_id::text)
        || audit_field('account_id', r.account_id)
        || audit_field('event', r.event)
        || audit_field('mode', r.mode)
        || audit_field('actor', r.actor)
        || audit_field('reason', r.reason)
        || audit_field('user_id', r.user_id::text)
        || audit_field('token_id', r.token_id::text)
        || audit_field('via', r.via)
        || audit_field('occurred_at', audit_ts(r.occurred_at))
$$;

CREATE FUNCTION audit_hash(source_table text, prev bytea, body text) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(
        audit_field('table', source_table) || audit_field('chain_prev', encode(prev, 'hex'))
            || body,
        'UTF8'))
$$;

-- The newest row of each account's chain: where the next row links. A pointer the trigger
-- keeps, not evidence: `gatekeeper audit verify` recomputes the chains from the rows.
CREATE TABLE audit_chain_heads (
    account_id text PRIMARY KEY,
    chain_seq bigint NOT NULL,
    source_table text NOT NULL,
    source_id bigint NOT NULL,
    chain_hash bytea NOT NULL,
    -- the hash before chain_hash (what the newest row links to)
    prev_hash bytea
);

ALTER TABLE risk_decisions
    ADD COLUMN chain_seq bigint, ADD COLUMN chain_prev bytea, ADD COLUMN chain_hash bytea;
ALTER TABLE order_outcomes
    ADD COLUMN chain_seq bigint, ADD COLUMN chain_prev bytea, ADD COLUMN chain_hash bytea;
ALTER TABLE protection_changes
    ADD COLUMN chain_seq bigint, ADD COLUMN chain_prev bytea, ADD COLUMN chain_hash bytea;
ALTER TABLE emergency_events
    ADD COLUMN chain_seq bigint, ADD COLUMN chain_prev bytea, ADD COLUMN chain_hash bytea;

-- Link the rows already there (the ALTERs above hold every table exclusively: nothing is
-- written meanwhile). The append-only triggers are off for this transaction only.
ALTER TABLE risk_decisions DISABLE TRIGGER risk_decisions_append_only;
ALTER TABLE order_outcomes DISABLE TRIGGER order_outcomes_append_only;
ALTER TABLE protection_changes DISABLE TRIGGER protection_changes_append_only;
ALTER TABLE emergency_events DISABLE TRIGGER emergency_events_append_only;

DO $$
DECLARE
    item record;
    account text := NULL;
    seq bigint;
    prev bytea;
    hash bytea;
    last_table text;
    last_id bigint;
BEGIN
    FOR item IN
        SELECT * FROM (
            SELECT 'protection_changes' AS source_table, 1 AS rank, r.id, r.account_id,
                   r.changed_at AS at, audit_body_protection_changes(r) AS body
            FROM protection_changes r
            UNION ALL
            SELECT 'emergency_events', 2, r.id, r.account_id, r.occurred_at,
                   audit_body_emergency_events(r)
            FROM emergency_events r
            UNION ALL
            SELECT 'risk_decisions', 3, r.id, r.account_id, r.decided_at,
                   audit_body_risk_decisions(r)
            FROM risk_decisions r
            UNION ALL
            SELECT 'order_outcomes', 4, r.id, r.account_id, r.recorded_at,
                   audit_body_order_outcomes(r)
            FROM order_outcomes r
        ) AS legacy
        ORDER BY account_id, at, rank, id
    LOOP
        IF account IS DISTINCT FROM item.account_id THEN
            IF account IS NOT NULL THEN
                INSERT INTO audit_chain_heads VALUES (account, seq, last_table, last_id, prev, NULL);
            END IF;
            account := item.account_id;
            seq := 0;
            prev := decode(repeat('00', 32), 'hex');
        END IF;
        seq := seq + 1;
        hash := audit_hash(item.source_table, prev, item.body);
        EXECUTE format(
            'UPDATE %I SET chain_seq = $1, chain_prev = $2, chain_hash = $3 WHERE id = $4',
            item.source_table)
            USING seq, prev, hash, item.id;
        prev := hash;
        last_table := item.source_table;
        last_id := item.id;
    END LOOP;
    IF account IS NOT NULL THEN
        INSERT INTO audit_chain_heads VALUES (account, seq, last_table, last_id, prev, NULL);
    END IF;
END;
$$;

ALTER TABLE risk_decisions ENABLE TRIGGER risk_decisions_append_only;
ALTER TABLE order_outcomes ENABLE TRIGGER order_outcomes_append_only;
ALTER TABLE protection_changes ENABLE TRIGGER protection_changes_append_only;
ALTER TABLE emergency_events ENABLE TRIGGER emergency_events_append_only;

ALTER TABLE risk_decisions ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN chain_prev SET NOT NULL, ALTER COLUMN chain_hash SET NOT NULL;
ALTER TABLE order_outcomes ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN chain_prev SET NOT NULL, ALTER COLUMN chain_hash SET NOT NULL;
ALTER TABLE protection_changes ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN chain_prev SET NOT NULL, ALTER COLUMN chain_hash SET NOT NULL;
ALTER TABLE emergency_events ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN chain_prev SET NOT NULL, ALTER COLUMN chain_hash SET NOT NULL;

-- Append one row to its account's chain. The account's head row, locked by the UPDATE until
-- the transaction ends, serializes the writers of one chain: under READ COMMITTED a waiter
-- reads the head its predecessor committed; under REPEATABLE READ it fails (serialization
-- failure) rather than fork the chain. The lock is taken at the insert, so an outcome waits
-- only for the end of a decision's transaction, not for its whole evaluation. Code that locks
-- protection rows takes the account's advisory lock first (gatekeeper.adapters.account_lock),
-- so the order is always: account lock, protection rows, head row.
-- SECURITY DEFINER: the service role may read the heads but not write them.
CREATE FUNCTION audit_chain_append() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    body text;
    seq bigint;
    prev bytea;
    hash bytea;
BEGIN
    IF TG_TABLE_NAME = 'risk_decisions' THEN
        body := audit_body_risk_decisions(NEW);
    ELSIF TG_TABLE_NAME = 'order_outcomes' THEN
        body := audit_body_order_outcomes(NEW);
    ELSIF TG_TABLE_NAME = 'protection_changes' THEN
        body := audit_body_protection_changes(NEW);
    ELSE
        body := audit_body_emergency_events(NEW);
    END IF;
    -- One statement: read the head, link the row to it and move it. A concurrent writer's
    -- UPDATE of the same head waits here and then re-evaluates on the head as committed.
    UPDATE audit_chain_heads h
    SET prev_hash = h.chain_hash, chain_seq = h.chain_seq + 1, source_table = TG_TABLE_NAME,
        source_id = NEW.id, chain_hash = audit_hash(TG_TABLE_NAME, h.chain_hash, body)
    WHERE h.account_id = NEW.account_id
    RETURNING h.chain_seq, h.prev_hash, h.chain_hash INTO seq, prev, hash;
    IF NOT FOUND THEN
        -- the account's first row: a concurrent first writer makes this wait, then no-op
        INSERT INTO audit_chain_heads (account_id, chain_seq, source_table, source_id, chain_hash)
        VALUES (NEW.account_id, 0, '', 0, decode(repeat('00', 32), 'hex'))
        ON CONFLICT (account_id) DO NOTHING;
        UPDATE audit_chain_heads h
        SET prev_hash = h.chain_hash, chain_seq = h.chain_seq + 1, source_table = TG_TABLE_NAME,
            source_id = NEW.id, chain_hash = audit_hash(TG_TABLE_NAME, h.chain_hash, body)
        WHERE h.account_id = NEW.account_id
        RETURNING h.chain_seq, h.prev_hash, h.chain_hash INTO STRICT seq, prev, hash;
    END IF;
    NEW.chain_seq := seq;
    NEW.chain_prev := prev;
    NEW.chain_hash := hash;
    RETURN NEW;
END;
$$;

CREATE TRIGGER risk_decisions_audit_chain BEFORE INSERT ON risk_decisions
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
CREATE TRIGGER order_outcomes_audit_chain BEFORE INSERT ON order_outcomes
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
CREATE TRIGGER protection_changes_audit_chain BEFORE INSERT ON protection_changes
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
CREATE TRIGGER emergency_events_audit_chain BEFORE INSERT ON emergency_events
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT SELECT ON audit_chain_heads TO gatekeeper_app;
    END IF;
END;
$$;
