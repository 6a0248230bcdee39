-- Issue #15: every site on its own clock. Scoring buckets each answer and invitation by the day
-- of its site's time zone (the zone its events carry, ResponseSubmitted / InvitationSent
-- .site_timezone, else contracts.sites' default for the overseas regions): tally days, hence ISO
-- weeks and months, are the site's. The zone is kept here for the weekly e-mail's dates, the
-- publisher's periods and the Grafana views below. NULL until the site's next event: readers fall
-- back to contracts.sites (Python) or to Europe/Paris (SQL).
ALTER TABLE sites ADD COLUMN timezone text;

-- Observed FCR's week: the contact's closing day on its site's clock (was Europe/Paris for all).
-- Answers and invitations already come by the site's day. Same columns as 0100.
CREATE OR REPLACE VIEW reporting_weekly_counts AS
WITH answers AS (
    SELECT site_id, week_start,
        sum(count) FILTER (WHERE item = '__responses__') AS responses,
        sum(count) FILTER (WHERE item = 'recommandation' AND rating IS NOT NULL) AS nps_n,
        sum(count) FILTER (WHERE item = 'recommandation' AND rating >= 9) AS promoters,
        sum(count) FILTER (WHERE item = 'recommandation' AND rating <= 6) AS detractors,
        sum(count) FILTER (WHERE item = 'effort' AND rating IS NOT NULL) AS ces_n,
        sum(count) FILTER (WHERE item = 'effort' AND rating >= 5) AS ces_agree,
        sum(count) FILTER (WHERE item = 'plusieurs_contacts') AS fcr_n,
        sum(count) FILTER (WHERE item = 'plusieurs_contacts' AND value = 'non') AS fcr_non,
        sum(count) FILTER (WHERE item = 'satisfaction_globale' AND rating IS NOT NULL) AS sat_n,
        sum(count) FILTER (WHERE item = 'satisfaction_globale' AND rating >= 8) AS sat_ok,
        sum(count * rating) FILTER (WHERE item = 'satisfaction_globale') AS sat_sum
    FROM reporting_tally_ratings GROUP BY site_id, week_start
), invitations AS (
    SELECT site_id, date_trunc('week', day)::date AS week_start, sum(count) AS invitations
    FROM invitation_tallies GROUP BY 1, 2
), closed AS (
    -- Observed FCR (réitération) with scoring's default 7-day window.
    SELECT c.site_id,
        date_trunc('week', c.closed_at AT TIME ZONE coalesce(z.timezone, 'Europe/Paris'))::date
            AS week_start,
        count(*) FILTER (WHERE r.repeated) AS repeated,
        count(*) FILTER (WHERE NOT r.repeated AND c.closed_at + interval '7 days' <= now()) AS resolved,
        count(*) FILTER (WHERE NOT r.repeated AND c.closed_at + interval '7 days' > now()) AS pending
    FROM contacts c
    LEFT JOIN sites z ON z.site_id = c.site_id
    CROSS JOIN LATERAL (SELECT EXISTS (
        SELECT 1 FROM contacts o WHERE o.user_pseudo_id = c.user_pseudo_id AND o.motif = c.motif
        AND o.closed_at > c.closed_at AND o.closed_at <= c.closed_at + interval '7 days'
    ) AS repeated) r
    GROUP BY 1, 2
), weeks AS (
    SELECT site_id, week_start FROM answers
    UNION SELECT site_id, week_start FROM invitations
    UNION SELECT site_id, week_start FROM closed
)
SELECT w.site_id, coalesce(s.network, '') AS network, coalesce(s.site_name, w.site_id) AS site_name,
    w.week_start, reporting_iso_week(w.week_start) AS week,
    coalesce(a.responses, 0) AS responses, coalesce(i.invitations, 0) AS invitations,
    coalesce(a.nps_n, 0) AS nps_n, coalesce(a.promoters, 0) AS promoters,
    coalesce(a.detractors, 0) AS detractors, coalesce(a.ces_n, 0) AS ces_n,
    coalesce(a.ces_agree, 0) AS ces_agree, coalesce(a.fcr_n, 0) AS fcr_n,
    coalesce(a.fcr_non, 0) AS fcr_non, coalesce(a.sat_n, 0) AS sat_n,
    coalesce(a.sat_ok, 0) AS sat_ok, coalesce(a.sat_sum, 0) AS sat_sum,
    coalesce(c.resolved, 0) AS fcr_resolved, coalesce(c.repeated, 0) AS fcr_repeated,
    coalesce(c.pending, 0) AS fcr_pending
FROM weeks w
LEFT JOIN answers a USING (site_id, week_start)
LEFT JOIN invitations i USING (site_id, week_start)
LEFT JOIN closed c USING (site_id, week_start)
LEFT JOIN sites s ON s.site_id = w.site_id;

-- An alert's week: its raising day on its site's clock. Same columns as 0100.
CREATE OR REPLACE VIEW reporting_alerts AS
SELECT a.alert_id, a.contact_id, a.network, a.site_id, a.raised_at, a.handled_at,
    a.handled_at IS NOT NULL AS handled,
    date_trunc('week', a.raised_at AT TIME ZONE coalesce(s.timezone, 'Europe/Paris'))::date
        AS week_start,
    reporting_iso_week(date_trunc('week',
        a.raised_at AT TIME ZONE coalesce(s.timezone, 'Europe/Paris'))::date) AS week,
    array_to_string(a.reasons, ', ') AS reasons,
    a.answers ->> 'satisfaction_globale' AS satisfaction_globale,
    a.answers ->> 'recommandation' AS recommandation
FROM alerts a LEFT JOIN sites s ON s.site_id = a.site_id;

-- Each site's clock, for the boards (a new column at the end).
CREATE OR REPLACE VIEW reporting_sites AS
SELECT site_id, network, coalesce(site_name, site_id) AS site_name, last_published_at,
    coalesce(timezone, 'Europe/Paris') AS timezone
FROM sites;
