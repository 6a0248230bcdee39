-- Issue #15: an alert's week on the boards is its raising day on its site's own clock (sites
-- .timezone, 0180; Europe/Paris until the site's next event), as in reporting_alerts. Same
-- columns as 0160; reporting_weekly_callbacks reads this view and follows.
CREATE OR REPLACE VIEW reporting_alert_outcomes AS
SELECT a.alert_id, a.network, a.site_id, a.raised_at, a.handled_at,
    date_trunc('week', a.raised_at AT TIME ZONE coalesce(s.timezone, 'Europe/Paris'))::date
        AS week_start,
    reporting_iso_week(date_trunc('week',
        a.raised_at AT TIME ZONE coalesce(s.timezone, 'Europe/Paris'))::date) AS week,
    a.handled_at IS NOT NULL AS handled,
    a.handled_at IS NOT NULL AND a.handled_at - a.raised_at <= interval '48 hours'
        AS handled_within_48h,
    a.handled_at IS NOT NULL AND a.handled_at - a.raised_at <= interval '7 days'
        AS handled_within_7d,
    a.outcome,
    CASE a.outcome
        WHEN 'rappele_resolu' THEN 'rappelé et résolu'
        WHEN 'rappele_sans_solution' THEN 'rappelé sans solution'
        WHEN 'injoignable' THEN 'injoignable'
        WHEN 'refus' THEN 'refus'
    END AS outcome_label,
    a.team,
    CASE WHEN a.handled_at IS NULL
        THEN floor(extract(epoch FROM now() - a.raised_at) / 86400)::integer END AS open_age_days
FROM alerts a LEFT JOIN sites s ON s.site_id = a.site_id;
