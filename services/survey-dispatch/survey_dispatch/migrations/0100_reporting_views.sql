-- Reporting views for the Grafana boards (deploy/grafana): decisions and sends per site and
-- week, counts only. No address, token or user id ever leaves through these views.

CREATE VIEW reporting_weekly_decisions AS
SELECT network, site_id, date_trunc('week', decided_at AT TIME ZONE 'Europe/Paris')::date AS week_start,
    to_char(date_trunc('week', decided_at AT TIME ZONE 'Europe/Paris'), 'IYYY-"W"IW') AS week,
    decision, count(*) AS contacts
FROM contacts GROUP BY 1, 2, 3, 4, 5;

CREATE VIEW reporting_weekly_invitations AS
SELECT network, site_id, date_trunc('week', closed_at AT TIME ZONE 'Europe/Paris')::date AS week_start,
    to_char(date_trunc('week', closed_at AT TIME ZONE 'Europe/Paris'), 'IYYY-"W"IW') AS week,
    survey_channel, status, count(*) AS invitations,
    avg(extract(epoch FROM sent_at - closed_at)) FILTER (WHERE sent_at IS NOT NULL)
        AS mean_closed_to_sent_seconds
FROM invitations GROUP BY 1, 2, 3, 4, 5, 6;

-- The schema name is the deployment's (the migrator's search_path), not hard-coded.
DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO grafana_reader', current_schema()); END $$;
GRANT SELECT ON reporting_weekly_decisions, reporting_weekly_invitations TO grafana_reader;
