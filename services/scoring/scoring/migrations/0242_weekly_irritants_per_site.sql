-- Issue #17: « Principaux irritants » for one site read in ~1 s, every site's week in ~23 s (300
-- sites x 13 weeks, 2 verbatims a site-day): the two CTEs read twice were materialised for every
-- site before the site's filter. NOT MATERIALIZED lets the site and week reach each read, and
-- a site-week's responses come from the site-day vectors by the position of `__responses__`
-- (no unnest). Same columns, same rows (the tests compare the view with scoring.irritants).
CREATE OR REPLACE VIEW reporting_weekly_irritants AS
WITH weeks AS NOT MATERIALIZED (
    SELECT d.site_id, date_trunc('week', d.day)::date AS week_start,
        sum(coalesce(d.counts[c.position], 0))::bigint AS responses
    FROM site_day_vectors d JOIN tally_cells c ON c.item = '__responses__'
    GROUP BY 1, 2
), irritants AS NOT MATERIALIZED (
    SELECT v.site_id, date_trunc('week', v.day)::date AS week_start, t.theme,
        count(*)::bigint AS irritants
    FROM verbatims v CROSS JOIN LATERAL unnest(v.themes) AS t (theme)
    WHERE v.tone = 'irritant' GROUP BY 1, 2, 3
), counted AS (
    SELECT i.site_id, i.week_start, i.theme, i.irritants, w.responses,
        h.weeks AS previous_weeks, coalesce(h.responses, 0) AS previous_responses,
        coalesce(h.irritants, 0) AS previous_irritants
    FROM irritants i
    JOIN weeks w ON w.site_id = i.site_id AND w.week_start = i.week_start
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE pw.responses > 0) AS weeks, sum(pw.responses) AS responses,
            sum(pi.irritants) AS irritants
        FROM weeks pw
        LEFT JOIN irritants pi ON pi.site_id = pw.site_id AND pi.week_start = pw.week_start
            AND pi.theme = i.theme
        WHERE pw.site_id = i.site_id
          AND pw.week_start BETWEEN i.week_start - 28 AND i.week_start - 7
    ) h
    WHERE reporting_may_show(w.responses)
), rates AS (
    SELECT c.*, least(c.irritants, c.responses)::double precision AS k1,
        least(c.previous_irritants, c.previous_responses)::double precision AS k2
    FROM counted c
), bounds AS (
    SELECT r.*,
        CASE WHEN r.previous_responses > 0 THEN 100 * (r.k1 / r.responses
                                                       - r.k2 / r.previous_responses) END AS change,
        CASE WHEN r.previous_responses > 0 THEN reporting_newcombe_bound(
            100 * r.k1 / r.responses, reporting_wilson(r.k1, r.responses, -1),
            reporting_wilson(r.k1, r.responses, 1),
            100 * r.k2 / r.previous_responses, reporting_wilson(r.k2, r.previous_responses, -1),
            reporting_wilson(r.k2, r.previous_responses, 1), -1) END AS change_low,
        CASE WHEN r.previous_responses > 0 THEN reporting_newcombe_bound(
            100 * r.k1 / r.responses, reporting_wilson(r.k1, r.responses, -1),
            reporting_wilson(r.k1, r.responses, 1),
            100 * r.k2 / r.previous_responses, reporting_wilson(r.k2, r.previous_responses, -1),
            reporting_wilson(r.k2, r.previous_responses, 1), 1) END AS change_high
    FROM rates r
)
SELECT b.site_id, coalesce(s.network, '') AS network, b.week_start,
    reporting_iso_week(b.week_start) AS week, b.theme, reporting_theme_label(b.theme) AS label,
    b.irritants, b.responses,
    row_number() OVER (PARTITION BY b.site_id, b.week_start ORDER BY b.irritants DESC,
        array_position(ARRAY['reponse_personnalisee', 'clarte', 'facilite_contact',
                             'comprehension', 'prise_en_charge', 'delais', 'courtoisie',
                             'autre'], b.theme), b.theme) AS rank,
    CASE WHEN b.previous_weeks > 0 THEN b.previous_irritants::numeric / b.previous_weeks
    END AS previous_mean,
    b.change, b.change_low, b.change_high,
    CASE WHEN b.change IS NULL THEN NULL
         WHEN reporting_change_distinguishable(b.change, b.change_low, b.change_high)
         THEN CASE WHEN b.change > 0 THEN 'hausse' ELSE 'baisse' END
         ELSE 'stable' END AS trend,
    CASE WHEN b.change IS NULL THEN 'pas d''historique'
         WHEN reporting_change_distinguishable(b.change, b.change_low, b.change_high)
         THEN CASE WHEN b.change > 0 THEN 'en hausse' ELSE 'en baisse' END
         ELSE 'stable (écart dans la marge d''incertitude)' END AS trend_text
FROM bounds b
LEFT JOIN sites s ON s.site_id = b.site_id;
SELECT managers_refresh_views();
