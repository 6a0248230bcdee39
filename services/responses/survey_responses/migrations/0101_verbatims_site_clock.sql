-- Issue #15: a verbatim's week is its site's ISO week, on the site's own clock (the zone the
-- invitation carried, migration 0010), as scoring's tallies and views count it: a suggestion
-- written at 23:30 on a Sunday in Guadeloupe belongs to that week, not to the next as in Paris.
CREATE OR REPLACE VIEW reporting_verbatims AS
WITH answered AS (
    SELECT r.response_id, r.answered_at, r.answers, i.network, i.site_id, i.channel, i.motif,
        date_trunc('week', r.answered_at AT TIME ZONE coalesce(i.site_timezone, 'Europe/Paris'))::date
            AS week_start
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
