-- Reporting view for the managers' Grafana board (deploy/grafana): the week's verbatims with
-- their scores. Verbatims are shown to managers, never published; no agent is known here.
-- Grafana reads this view only, through the read-only role grafana_reader.

-- A site-week below the anonymity floor (5 responses) shows no verbatim: with so few answers a
-- manager could tell who wrote what.
CREATE VIEW reporting_verbatims AS
WITH answered AS (
    SELECT r.response_id, r.answered_at, r.answers, i.network, i.site_id, i.channel, i.motif,
        date_trunc('week', r.answered_at AT TIME ZONE 'Europe/Paris')::date AS week_start
    FROM responses r JOIN invitations i USING (invitation_id)
), weekly AS (
    SELECT *, count(*) OVER (PARTITION BY site_id, week_start) AS site_week_responses
    FROM answered
)
SELECT response_id, network, site_id, channel, motif, answered_at, week_start,
    to_char(week_start, 'IYYY-"W"IW') AS week,
    btrim(answers ->> 'suggestion') AS verbatim,
    answers ->> 'satisfaction_globale' AS satisfaction_globale,
    answers ->> 'recommandation' AS recommandation,
    answers ->> 'effort' AS effort,
    answers ->> 'plusieurs_contacts' AS plusieurs_contacts
FROM weekly
WHERE coalesce(btrim(answers ->> 'suggestion'), '') <> '' AND site_week_responses >= 5;

-- The schema name is the deployment's (the migrator's search_path), not hard-coded.
DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO grafana_reader', current_schema()); END $$;
GRANT SELECT ON reporting_verbatims TO grafana_reader;
