-- /readyz compares schema_migrations with the files: the service, running as a member of
-- gatekeeper_app, must be able to read it. (Numbered after 0020 because databases that
-- already applied 0020 refuse older numbers.)

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT SELECT ON schema_migrations TO gatekeeper_app;
    END IF;
END;
$$;
