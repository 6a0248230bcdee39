-- Issue #18: does a change from last week stand out from the noise? contracts.figures.compare in
-- SQL, so the boards say what the e-mail and the screens say. A change is distinguishable when
-- the 95 % interval of the difference excludes 0 (and agrees in sign with it):
-- shares: Newcombe's hybrid score interval (1998, method 10) from the two Wilson intervals the
--   view already carries (the rule is linear, so the 0..100 scale is kept);
-- NPS: the difference of the two adjusted-Wald estimates, ± z·sqrt(var₁ + var₂), from the counts.
-- Other figures (the mean): no verdict. Amounts are rounded half away from zero (numeric round()
-- of the 15-digit decimal of the float), as contracts.figures.round_half_away.

CREATE FUNCTION reporting_newcombe_bound(
    p1 double precision, l1 double precision, u1 double precision,
    p2 double precision, l2 double precision, u2 double precision, side integer
) RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN side < 0 THEN (p1 - p2) - sqrt((p1 - l1) ^ 2 + (u2 - p2) ^ 2)
                ELSE (p1 - p2) + sqrt((u1 - p1) ^ 2 + (p2 - l2) ^ 2) END
$$;

CREATE FUNCTION reporting_nps_difference_bound(
    promoters1 double precision, detractors1 double precision, n1 double precision,
    promoters2 double precision, detractors2 double precision, n2 double precision, side integer
) RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n1 > 0 AND n2 > 0 THEN 100 * (
        ((promoters1 - detractors1) / (n1 + 3) - (promoters2 - detractors2) / (n2 + 3))
        + side * 1.959963984540054 * sqrt(
            ((promoters1 + 0.75) / (n1 + 3) + (detractors1 + 0.75) / (n1 + 3)
             - ((promoters1 - detractors1) / (n1 + 3)) ^ 2) / (n1 + 3)
          + ((promoters2 + 0.75) / (n2 + 3) + (detractors2 + 0.75) / (n2 + 3)
             - ((promoters2 - detractors2) / (n2 + 3)) ^ 2) / (n2 + 3)))
    END
$$;

CREATE FUNCTION reporting_change_distinguishable(
    change double precision, low double precision, high double precision
) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN change IS NULL OR low IS NULL OR high IS NULL THEN NULL
                ELSE (low > 0 AND change > 0) OR (high < 0 AND change < 0) END
$$;

-- « stable (écart dans la marge d'incertitude) », « en baisse de 5 points » (points of a share
-- or of the NPS; a real change below half a point is told to the tenth). A SQL-standard body:
-- bound at creation, so Grafana's role finds the function it calls whatever its search_path.
CREATE FUNCTION reporting_change_text(
    change double precision, low double precision, high double precision
) RETURNS text LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    SELECT CASE
        WHEN reporting_change_distinguishable(change, low, high) IS NULL THEN NULL
        WHEN NOT reporting_change_distinguishable(change, low, high)
        THEN 'stable (écart dans la marge d''incertitude)'
        ELSE 'en ' || CASE WHEN change > 0 THEN 'hausse' ELSE 'baisse' END || ' de '
            || replace(a.amount::text, '.', ',') || CASE WHEN a.amount < 2 THEN ' point'
                                                          ELSE ' points' END
    END
    FROM (SELECT CASE WHEN round(abs(change)::numeric) = 0 THEN round(abs(change)::numeric, 1)
                      ELSE round(abs(change)::numeric) END AS amount) AS a;
END;

-- The board's weekly rows with the verdict on their change: the panels show the change's
-- number only when it is distinguishable, and its words always.
CREATE VIEW reporting_weekly_changes AS
SELECT site.*, bounds.low AS change_low, bounds.high AS change_high,
    reporting_change_distinguishable(site.change, bounds.low, bounds.high) AS distinguishable,
    reporting_change_text(site.change, bounds.low, bounds.high) AS change_text
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

GRANT SELECT ON reporting_weekly_changes TO grafana_reader;
