-- Reporting views for the managers' Grafana boards (deploy/grafana). Grafana reads these views
-- only, through the read-only role grafana_reader, never the tables: the tables may change, the
-- views are the contract. Weeks are ISO weeks ('2026-W47') of the tallies' reporting day.
-- Intervals: Wilson for shares, adjusted Wald for the NPS (as scoring.domain); means get none
-- here (Student t needs a quantile table; the weekly report shows them from scoring.domain).

-- The manager views' anonymity floor: no breakdown below this many answers.
CREATE FUNCTION reporting_anonymity_floor() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT 5 $$;

-- Wilson score bound for k/n in percent; side = -1 for the low bound, +1 for the high one.
CREATE FUNCTION reporting_wilson(k double precision, n double precision, side integer)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n > 0 THEN 100 * greatest(0, least(1,
        ((k / n) + 3.841458820694124 / (2 * n)) / (1 + 3.841458820694124 / n)
        + side * 1.959963984540054 / (1 + 3.841458820694124 / n)
          * sqrt((k / n) * (1 - k / n) / n + 3.841458820694124 / (4 * n * n))))
    END
$$;

-- Adjusted-Wald NPS bound (Rocks 2016) on -100..100, as scoring.domain.nps_interval.
CREATE FUNCTION reporting_nps_bound(
    promoters double precision, detractors double precision, n double precision, side integer
) RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n > 0 THEN 100 * greatest(-1, least(1,
        ((promoters + 0.75) - (detractors + 0.75)) / (n + 3)
        + side * 1.959963984540054 * sqrt(
            ((promoters + 0.75) / (n + 3) + (detractors + 0.75) / (n + 3)
             - (((promoters + 0.75) - (detractors + 0.75)) / (n + 3)) ^ 2) / (n + 3))))
    END
$$;

CREATE FUNCTION reporting_iso_week(day date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT to_char(day, 'IYYY-"W"IW') $$;

-- Tally rows with the rating as an integer when the value is one (never a failing cast).
CREATE VIEW reporting_tally_ratings AS
SELECT site_id, day, date_trunc('week', day)::date AS week_start, channel, motif, item, value,
       CASE WHEN value ~ '^-?[0-9]+$' THEN value::integer END AS rating, count
FROM tallies;

-- Per site and week: the counts every indicator is computed from.
CREATE VIEW reporting_weekly_counts AS
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
    SELECT c.site_id, date_trunc('week', c.closed_at AT TIME ZONE 'Europe/Paris')::date AS week_start,
        count(*) FILTER (WHERE r.repeated) AS repeated,
        count(*) FILTER (WHERE NOT r.repeated AND c.closed_at + interval '7 days' <= now()) AS resolved,
        count(*) FILTER (WHERE NOT r.repeated AND c.closed_at + interval '7 days' > now()) AS pending
    FROM contacts c
    CROSS JOIN LATERAL (SELECT EXISTS (
        SELECT 1 FROM contacts o WHERE o.user_hash = c.user_hash AND o.motif = c.motif
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

-- One row per site, week and indicator: value, n, 95 % interval (percent or NPS points).
CREATE VIEW reporting_weekly_indicators AS
SELECT c.site_id, c.network, c.site_name, c.week_start, c.week, f.indicator, f.label,
    CASE WHEN f.n > 0 THEN f.value END AS value, f.n AS sample_size,
    CASE WHEN f.interval_kind = 'nps'
         THEN reporting_nps_bound(c.promoters, c.detractors, f.n, -1)
         WHEN f.interval_kind = 'wilson' THEN reporting_wilson(f.k, f.n, -1) END AS low,
    CASE WHEN f.interval_kind = 'nps'
         THEN reporting_nps_bound(c.promoters, c.detractors, f.n, 1)
         WHEN f.interval_kind = 'wilson' THEN reporting_wilson(f.k, f.n, 1) END AS high
FROM reporting_weekly_counts c
CROSS JOIN LATERAL (VALUES
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
) AS f(indicator, label, interval_kind, n, k, value);

-- The board's main view: each indicator with last week's value and the change.
CREATE VIEW reporting_weekly_site AS
SELECT cur.*, prev.value AS previous_value, prev.sample_size AS previous_sample_size,
    cur.value - prev.value AS change
FROM reporting_weekly_indicators cur
LEFT JOIN reporting_weekly_indicators prev
    ON prev.site_id = cur.site_id AND prev.indicator = cur.indicator
    AND prev.week_start = cur.week_start - 7;

-- The seven themes per site and week, only from the anonymity floor on.
CREATE VIEW reporting_weekly_themes AS
SELECT t.site_id, coalesce(s.network, '') AS network, t.week_start,
    reporting_iso_week(t.week_start) AS week, t.item AS theme,
    CASE t.item
        WHEN 'theme_reponse_personnalisee' THEN 'Réponse personnalisée'
        WHEN 'theme_clarte' THEN 'Clarté de la réponse'
        WHEN 'theme_facilite_contact' THEN 'Facilité pour nous contacter'
        WHEN 'theme_comprehension' THEN 'Compréhension de la demande'
        WHEN 'theme_prise_en_charge' THEN 'Prise en charge de la demande'
        WHEN 'theme_delais' THEN 'Délais de traitement'
        WHEN 'theme_courtoisie' THEN 'Courtoisie'
        ELSE t.item END AS label,
    sum(t.count * t.rating)::float8 / sum(t.count) AS mean,
    sum(t.count) AS sample_size,
    sum(t.count) FILTER (WHERE t.rating >= 8)::float8 * 100 / sum(t.count) AS satisfied_share
FROM reporting_tally_ratings t
LEFT JOIN sites s ON s.site_id = t.site_id
WHERE t.item LIKE 'theme\_%' AND t.rating IS NOT NULL
GROUP BY t.site_id, s.network, t.week_start, t.item
HAVING sum(t.count) >= reporting_anonymity_floor();

-- Breakdown by channel and by motif; a cell below the anonymity floor is not shown at all.
CREATE VIEW reporting_weekly_breakdown AS
SELECT t.site_id, coalesce(s.network, '') AS network, t.week_start,
    reporting_iso_week(t.week_start) AS week,
    CASE WHEN GROUPING(t.channel) = 0 THEN 'channel' ELSE 'motif' END AS dimension,
    coalesce(t.channel, t.motif) AS key,
    sum(t.count) FILTER (WHERE t.item = '__responses__') AS responses,
    sum(t.count) FILTER (WHERE t.item = 'satisfaction_globale' AND t.rating >= 8)::float8 * 100
        / nullif(sum(t.count) FILTER (WHERE t.item = 'satisfaction_globale'
                                      AND t.rating IS NOT NULL), 0) AS satisfaction,
    (sum(t.count) FILTER (WHERE t.item = 'recommandation' AND t.rating >= 9)
     - sum(t.count) FILTER (WHERE t.item = 'recommandation' AND t.rating <= 6))::float8 * 100
        / nullif(sum(t.count) FILTER (WHERE t.item = 'recommandation'
                                      AND t.rating IS NOT NULL), 0) AS nps
FROM reporting_tally_ratings t
LEFT JOIN sites s ON s.site_id = t.site_id
GROUP BY t.site_id, s.network, t.week_start, GROUPING SETS ((t.channel), (t.motif))
HAVING sum(t.count) FILTER (WHERE t.item = '__responses__') >= reporting_anonymity_floor();

-- Detractor alerts to call back. No agent is known to scoring; the contact id is the CRM's
-- reference the call-back needs.
CREATE VIEW reporting_alerts AS
SELECT alert_id, contact_id, network, site_id, raised_at, handled_at,
    handled_at IS NOT NULL AS handled,
    date_trunc('week', raised_at AT TIME ZONE 'Europe/Paris')::date AS week_start,
    reporting_iso_week(date_trunc('week', raised_at AT TIME ZONE 'Europe/Paris')::date) AS week,
    array_to_string(reasons, ', ') AS reasons,
    answers ->> 'satisfaction_globale' AS satisfaction_globale,
    answers ->> 'recommandation' AS recommandation
FROM alerts;

CREATE VIEW reporting_sites AS
SELECT site_id, network, coalesce(site_name, site_id) AS site_name, last_published_at
FROM sites;

-- The schema name is the deployment's (the migrator's search_path), not hard-coded.
DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO grafana_reader', current_schema()); END $$;
GRANT SELECT ON reporting_weekly_site, reporting_weekly_indicators, reporting_weekly_themes,
    reporting_weekly_breakdown, reporting_alerts, reporting_sites TO grafana_reader;
