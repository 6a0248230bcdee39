-- Issue #12 (Trust): contacts keyed by survey-dispatch's keyed pseudonym, and the reporting views
-- honour the anonymity floor the service writes in reporting_settings (0006). After 0100 because
-- its views read the contacts (a rename carries over into them).

-- The old rows hold sha256(network:user_ref) without a key, which enumeration reverses: they
-- cannot be re-keyed (scoring never had the CRM reference's key), so they go. Observed FCR starts
-- again from the survey.contact.v1 stream (30 days kept by the broker: replay to refill).
DELETE FROM contacts;
ALTER TABLE contacts RENAME COLUMN user_hash TO user_pseudo_id;

-- The floor, read from the settings row (not a constant any more). SECURITY DEFINER: Grafana's
-- role reads the views, not the table; the SQL-standard body is bound at creation, so no
-- search_path can redirect it.
CREATE OR REPLACE FUNCTION reporting_anonymity_floor() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT coalesce((SELECT anonymity_floor FROM reporting_settings WHERE id), 5);
END;

-- contracts.floors.may_show in SQL: may a figure computed from n answers be shown?
CREATE FUNCTION reporting_may_show(n numeric) RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(n, 0) >= reporting_anonymity_floor();
END;

-- A site-week below the floor shows no figure at all (as the weekly e-mail); inside a shown
-- site-week, a figure answered by fewer than the floor is blanked (as the API's breakdown).
CREATE OR REPLACE VIEW reporting_weekly_indicators AS
SELECT c.site_id, c.network, c.site_name, c.week_start, c.week, f.indicator, f.label,
    CASE WHEN f.n > 0 AND f.shown THEN f.value END AS value, f.n AS sample_size,
    CASE WHEN NOT f.shown THEN NULL
         WHEN f.interval_kind = 'nps'
         THEN reporting_nps_bound(c.promoters, c.detractors, f.n, -1)
         WHEN f.interval_kind = 'wilson' THEN reporting_wilson(f.k, f.n, -1) END AS low,
    CASE WHEN NOT f.shown THEN NULL
         WHEN f.interval_kind = 'nps'
         THEN reporting_nps_bound(c.promoters, c.detractors, f.n, 1)
         WHEN f.interval_kind = 'wilson' THEN reporting_wilson(f.k, f.n, 1) END AS high
FROM reporting_weekly_counts c
CROSS JOIN LATERAL (
    SELECT v.*, reporting_may_show(c.responses) AND reporting_may_show(v.n::numeric) AS shown
    FROM (VALUES
    ('nps', 'Recommandation (NPS)', 'nps', c.nps_n::float8, NULL::float8,
        (c.promoters - c.detractors)::float8 * 100 / nullif(c.nps_n, 0)),
    ('ces', 'Effort (part d''accord)', 'wilson', c.ces_n, c.ces_agree,
        c.ces_agree::float8 * 100 / nullif(c.ces_n, 0)),
    ('fcr_declared', 'Résolution au premier contact (déclarée)', 'wilson', c.fcr_n, c.fcr_non,
        c.fcr_non::float8 * 100 / nullif(c.fcr_n, 0)),
    ('fcr_observed', 'Résolution au premier contact (observée)', 'wilson',
        c.fcr_resolved + c.fcr_repeated, c.fcr_resolved,
        c.fcr_resolved::float8 * 100 / nullif(c.fcr_resolved + c.fcr_repeated, 0)),
    ('satisfaction', 'Satisfaction globale (8 à 10)', 'wilson', c.sat_n, c.sat_ok,
        c.sat_ok::float8 * 100 / nullif(c.sat_n, 0)),
    ('satisfaction_mean', 'Satisfaction globale (moyenne sur 10)', 'none', c.sat_n, NULL,
        c.sat_sum::float8 / nullif(c.sat_n, 0)),
    -- Never above 100 %: a response may arrive before its invitation is tallied.
    ('response_rate', 'Taux de réponse', 'wilson',
        CASE WHEN c.invitations > 0 THEN greatest(c.invitations, c.responses) ELSE 0 END,
        c.responses, c.responses::float8 * 100
            / nullif(CASE WHEN c.invitations > 0 THEN greatest(c.invitations, c.responses) END, 0))
    ) AS v(indicator, label, interval_kind, n, k, value)
) AS f;

-- A cell below the floor is not listed; inside a listed cell, NPS and satisfaction are blank
-- unless as many people answered them.
CREATE OR REPLACE VIEW reporting_weekly_breakdown AS
SELECT t.site_id, coalesce(s.network, '') AS network, t.week_start,
    reporting_iso_week(t.week_start) AS week,
    CASE WHEN GROUPING(t.channel) = 0 THEN 'channel' ELSE 'motif' END AS dimension,
    coalesce(t.channel, t.motif) AS key,
    sum(t.count) FILTER (WHERE t.item = '__responses__') AS responses,
    CASE WHEN reporting_may_show(sum(t.count) FILTER (WHERE t.item = 'satisfaction_globale'
                                                       AND t.rating IS NOT NULL))
    THEN sum(t.count) FILTER (WHERE t.item = 'satisfaction_globale' AND t.rating >= 8)::float8
        * 100 / nullif(sum(t.count) FILTER (WHERE t.item = 'satisfaction_globale'
                                            AND t.rating IS NOT NULL), 0) END AS satisfaction,
    CASE WHEN reporting_may_show(sum(t.count) FILTER (WHERE t.item = 'recommandation'
                                                       AND t.rating IS NOT NULL))
    THEN (coalesce(sum(t.count) FILTER (WHERE t.item = 'recommandation' AND t.rating >= 9), 0)
          - coalesce(sum(t.count) FILTER (WHERE t.item = 'recommandation' AND t.rating <= 6), 0)
         )::float8 * 100
        / nullif(sum(t.count) FILTER (WHERE t.item = 'recommandation'
                                      AND t.rating IS NOT NULL), 0) END AS nps
FROM reporting_tally_ratings t
LEFT JOIN sites s ON s.site_id = t.site_id
GROUP BY t.site_id, s.network, t.week_start, GROUPING SETS ((t.channel), (t.motif))
HAVING reporting_may_show(sum(t.count) FILTER (WHERE t.item = '__responses__'));
