-- The read-only role Grafana uses (deploy/grafana); each service's 0100 migration grants it its
-- reporting views only. Applied in every schema before the service's own migrations.
-- Concurrent migrations of the four schemas may race to create the shared role.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        CREATE ROLE grafana_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
