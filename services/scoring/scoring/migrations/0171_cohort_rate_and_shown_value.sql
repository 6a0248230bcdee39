-- Issue #18 in the reporting views (Grafana), as scoring.domain tells the same figures:
-- 1. The response rate of a week is its cohort's (domain.cohort_response_rate): the answers to
--    the invitations sent that week (invitation_tallies.answered, migration 0170) over those
--    invitations, at most one answer per invitation (domain.cohort_of); no more
--    greatest(invitations, responses) over answers received that week. `provisional` while a
--    link of the cohort has not expired; observed FCR is provisional while contacts are pending.
-- 2. A figure inside its own interval (domain.manager_value): `shown_value` is the value, or
--    the interval's centre when the value lies outside its interval (one promoter: NPS +100,
--    interval -48.5 to 98.5), and `adjusted` says so. `value` stays the computed figure: the
--    change from last week and its verdict are computed on it, as the e-mail does.
-- New columns come at the end of each view (CREATE OR REPLACE keeps the others as they are);
-- reporting_weekly_counts is left alone (0180 redefines it with its own columns).

-- contracts.figures.inside_interval / centre in SQL.
CREATE FUNCTION reporting_outside_interval(
    value double precision, low double precision, high double precision
) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(value < low - 1e-9 * greatest(1, abs(value))
                    OR value > high + 1e-9 * greatest(1, abs(value)), false)
$$;

-- A SQL-standard body: bound at creation, so Grafana's role finds the function it calls
-- whatever its search_path.
CREATE FUNCTION reporting_shown_value(
    value double precision, low double precision, high double precision
) RETURNS double precision LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    SELECT CASE WHEN reporting_outside_interval(value, low, high) THEN (low + high) / 2
                ELSE value END;
END;

CREATE OR REPLACE VIEW reporting_weekly_indicators AS
SELECT b.site_id, b.network, b.site_name, b.week_start, b.week, b.indicator, b.label, b.value,
    b.sample_size, b.low, b.high, b.provisional,
    reporting_shown_value(b.value, b.low, b.high) AS shown_value,
    reporting_outside_interval(b.value, b.low, b.high) AS adjusted
FROM (
    SELECT c.site_id, c.network, c.site_name, c.week_start, c.week, f.indicator, f.label,
        CASE WHEN f.n > 0 AND f.shown THEN f.value END AS value, f.n AS sample_size,
        CASE WHEN NOT f.shown THEN NULL
             WHEN f.interval_kind = 'nps'
             THEN reporting_nps_bound(c.promoters, c.detractors, f.n, -1)
             WHEN f.interval_kind = 'wilson' THEN reporting_wilson(f.k, f.n, -1) END AS low,
        CASE WHEN NOT f.shown THEN NULL
             WHEN f.interval_kind = 'nps'
             THEN reporting_nps_bound(c.promoters, c.detractors, f.n, 1)
             WHEN f.interval_kind = 'wilson' THEN reporting_wilson(f.k, f.n, 1) END AS high,
        f.provisional
    FROM reporting_weekly_counts c
    CROSS JOIN LATERAL (
        -- The week's invitation cohort: answers to the invitations sent that week.
        SELECT least(coalesce(sum(i.answered), 0), c.invitations) AS answered,
            coalesce(max(i.open_until) > now(), false) AS open
        FROM invitation_tallies i
        WHERE i.site_id = c.site_id AND i.day BETWEEN c.week_start AND c.week_start + 6
    ) AS cohort
    CROSS JOIN LATERAL (
        SELECT v.*, reporting_may_show(c.responses) AND reporting_may_show(v.n::numeric) AS shown
        FROM (VALUES
        ('nps', 'Recommandation (NPS)', 'nps', c.nps_n::float8, NULL::float8,
            (c.promoters - c.detractors)::float8 * 100 / nullif(c.nps_n, 0), false),
        ('ces', 'Effort (part d''accord)', 'wilson', c.ces_n, c.ces_agree,
            c.ces_agree::float8 * 100 / nullif(c.ces_n, 0), false),
        ('fcr_declared', 'Résolution au premier contact (déclarée)', 'wilson', c.fcr_n,
            c.fcr_non, c.fcr_non::float8 * 100 / nullif(c.fcr_n, 0), false),
        ('fcr_observed', 'Résolution au premier contact (observée)', 'wilson',
            c.fcr_resolved + c.fcr_repeated, c.fcr_resolved,
            c.fcr_resolved::float8 * 100 / nullif(c.fcr_resolved + c.fcr_repeated, 0),
            c.fcr_pending > 0),
        ('satisfaction', 'Satisfaction globale (8 à 10)', 'wilson', c.sat_n, c.sat_ok,
            c.sat_ok::float8 * 100 / nullif(c.sat_n, 0), false),
        ('satisfaction_mean', 'Satisfaction globale (moyenne sur 10)', 'none', c.sat_n, NULL,
            c.sat_sum::float8 / nullif(c.sat_n, 0), false),
        ('response_rate', 'Taux de réponse', 'wilson', c.invitations, cohort.answered,
            cohort.answered::float8 * 100 / nullif(c.invitations, 0), cohort.open)
        ) AS v(indicator, label, interval_kind, n, k, value, provisional)
    ) AS f
) AS b;

-- The board's main view, with the new columns at the end.
CREATE OR REPLACE VIEW reporting_weekly_site AS
SELECT cur.site_id, cur.network, cur.site_name, cur.week_start, cur.week, cur.indicator,
    cur.label, cur.value, cur.sample_size, cur.low, cur.high,
    prev.value AS previous_value, prev.sample_size AS previous_sample_size,
    cur.value - prev.value AS change,
    cur.provisional, cur.shown_value, cur.adjusted
FROM reporting_weekly_indicators cur
LEFT JOIN reporting_weekly_indicators prev
    ON prev.site_id = cur.site_id AND prev.indicator = cur.indicator
    AND prev.week_start = cur.week_start - 7;

-- The verdicts' view (0150), with the new columns at the end.
CREATE OR REPLACE VIEW reporting_weekly_changes AS
SELECT site.site_id, site.network, site.site_name, site.week_start, site.week, site.indicator,
    site.label, site.value, site.sample_size, site.low, site.high, site.previous_value,
    site.previous_sample_size, site.change,
    bounds.low AS change_low, bounds.high AS change_high,
    reporting_change_distinguishable(site.change, bounds.low, bounds.high) AS distinguishable,
    reporting_change_text(site.change, bounds.low, bounds.high) AS change_text,
    site.provisional, site.shown_value, site.adjusted,
    -- What a person reads beside the figure, in French.
    nullif(concat_ws(' ; ',
        CASE WHEN site.adjusted THEN 'centre de l''intervalle : trop peu de réponses' END,
        CASE WHEN site.provisional AND site.indicator = 'response_rate'
             THEN 'provisoire : des liens de la semaine peuvent encore être utilisés'
             WHEN site.provisional THEN 'provisoire' END), '') AS note
FROM reporting_weekly_site site
LEFT JOIN reporting_weekly_indicators prev
    ON prev.site_id = site.site_id AND prev.indicator = site.indicator
    AND prev.week_start = site.week_start - 7
LEFT JOIN reporting_weekly_counts now_counts
    ON now_counts.site_id = site.site_id AND now_counts.week_start = site.week_start
LEFT JOIN reporting_weekly_counts prev_counts
    ON prev_counts.site_id = site.site_id AND prev_counts.week_start = site.week_start - 7
CROSS JOIN LATERAL (
    SELECT
        CASE WHEN site.change IS NULL THEN NULL
             WHEN site.indicator = 'nps' THEN reporting_nps_difference_bound(
                 now_counts.promoters, now_counts.detractors, site.sample_size,
                 prev_counts.promoters, prev_counts.detractors, prev.sample_size, -1)
             WHEN site.low IS NOT NULL AND prev.low IS NOT NULL THEN reporting_newcombe_bound(
                 site.value, site.low, site.high, prev.value, prev.low, prev.high, -1)
        END AS low,
        CASE WHEN site.change IS NULL THEN NULL
             WHEN site.indicator = 'nps' THEN reporting_nps_difference_bound(
                 now_counts.promoters, now_counts.detractors, site.sample_size,
                 prev_counts.promoters, prev_counts.detractors, prev.sample_size, 1)
             WHEN site.low IS NOT NULL AND prev.low IS NOT NULL THEN reporting_newcombe_bound(
                 site.value, site.low, site.high, prev.value, prev.low, prev.high, 1)
        END AS high
) AS bounds;
