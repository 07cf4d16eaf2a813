-- gatekeeper_app: the privileges the running service needs, and no more. Audit tables get
-- SELECT and INSERT only. Log the service in as a member of it, e.g.
--   CREATE ROLE gatekeeper LOGIN PASSWORD '...' IN ROLE gatekeeper_app;
-- Roles are cluster-wide: creating it is idempotent and tolerates a concurrent creator.
-- If the migrating user may not create roles, a DBA creates it and re-grants (see below).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        BEGIN
            CREATE ROLE gatekeeper_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created by a concurrent migration on another database
            WHEN insufficient_privilege THEN
                RAISE WARNING 'cannot create role gatekeeper_app (no CREATEROLE privilege);'
                    ' audit tables stay protected by their triggers';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT USAGE ON SCHEMA public TO gatekeeper_app;
        GRANT SELECT ON users TO gatekeeper_app;
        GRANT SELECT, INSERT, UPDATE ON api_tokens TO gatekeeper_app;
        GRANT SELECT, INSERT, UPDATE ON portfolio_protections TO gatekeeper_app;
        GRANT SELECT, INSERT ON protection_changes, emergency_events TO gatekeeper_app;
    END IF;
END;
$$;
