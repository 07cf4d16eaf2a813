-- order_submission_keys (sql/0033) keeps what first_submission can still read: the keys of
-- decisions since yesterday (New York). Older ones are never read again; without pruning the
-- table gained at least two rows per allowed decision forever. prune_order_submission_keys()
-- deletes them and says how many; each replica's reconciler calls it at most once an hour
-- (gatekeeper.reconciler). A derived index, not an audit table: the decisions stay.

CREATE INDEX order_submission_keys_by_day ON order_submission_keys (trading_day);

CREATE FUNCTION prune_order_submission_keys() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM order_submission_keys
        WHERE trading_day < (now() AT TIME ZONE 'America/New_York')::date - 1
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

REVOKE ALL ON FUNCTION prune_order_submission_keys() FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatekeeper_app') THEN
        GRANT EXECUTE ON FUNCTION prune_order_submission_keys() TO gatekeeper_app;
    END IF;
END;
$$;
