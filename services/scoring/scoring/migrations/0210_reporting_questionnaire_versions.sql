-- Issue #15, a questionnaire per network, in the reporting views (Grafana): scoring.domain leaves
-- out an indicator whose items no tallied version asks (supported_indicators, questionnaire_of);
-- the views did not know versions, so an SMS-only site-week showed the NPS as an empty figure
-- (n 0) beside its real ones. Now an indicator of reporting_weekly_indicators has no row for a
-- site-week whose responses all carry versions that never ask its item, as the publisher, the
-- weekly e-mail and the API leave it out; the views that read it (weekly_site, weekly_changes and
-- their managers' twins) follow. Each indicator's n already counts the answers to its own item
-- (nps_n = answers to `recommandation`), never all responses: unchanged.
-- A site-week without responses (invitations or contacts only) keeps every row, as domain's
-- fallback to the default version. Responses tallied without a `__version__` cell count as the
-- default version (domain.tallied_versions). A version missing from questionnaire_items is taken
-- to ask every item (never hides a figure): a new version adds its items in a migration.
-- Columns unchanged: no managers_refresh_views() needed.

-- The items each questionnaire version asks (contracts/questionnaires/*.json).
CREATE TABLE questionnaire_items (
    version text NOT NULL,
    item    text NOT NULL,
    PRIMARY KEY (version, item)
);
INSERT INTO questionnaire_items (version, item) VALUES
    ('urssaf-chaud-2024-v1', 'satisfaction_globale'),
    ('urssaf-chaud-2024-v1', 'recommandation'),
    ('urssaf-chaud-2024-v1', 'canal'),
    ('urssaf-chaud-2024-v1', 'effort'),
    ('urssaf-chaud-2024-v1', 'plusieurs_contacts'),
    ('urssaf-chaud-2024-v1', 'theme_reponse_personnalisee'),
    ('urssaf-chaud-2024-v1', 'theme_clarte'),
    ('urssaf-chaud-2024-v1', 'theme_facilite_contact'),
    ('urssaf-chaud-2024-v1', 'theme_comprehension'),
    ('urssaf-chaud-2024-v1', 'theme_prise_en_charge'),
    ('urssaf-chaud-2024-v1', 'theme_delais'),
    ('urssaf-chaud-2024-v1', 'theme_courtoisie'),
    ('urssaf-chaud-2024-v1', 'profil'),
    ('urssaf-chaud-2024-v1', 'nature_demande'),
    ('urssaf-chaud-2024-v1', 'recontact'),
    ('urssaf-chaud-2024-v1', 'suggestion'),
    ('sms-court-2026-v1', 'satisfaction_globale'),
    ('sms-court-2026-v1', 'effort'),
    ('sms-court-2026-v1', 'plusieurs_contacts');

-- contracts.questionnaire.DEFAULT_VERSION: what untagged responses were asked.
CREATE FUNCTION questionnaire_default_version() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'urssaf-chaud-2024-v1' $$;

-- Responses per site, week and version; the untagged rest as the default version. Not a
-- reporting_ view: Grafana and managers read the indicators, not this.
CREATE VIEW questionnaire_weekly_versions AS
WITH weeks AS (
    SELECT site_id, week_start,
        coalesce(sum(count) FILTER (WHERE item = '__responses__'), 0)
        - coalesce(sum(count) FILTER (WHERE item = '__version__'), 0) AS untagged
    FROM reporting_tally_ratings WHERE item IN ('__responses__', '__version__')
    GROUP BY 1, 2
)
SELECT site_id, week_start, value AS version, sum(count) AS responses
FROM reporting_tally_ratings WHERE item = '__version__'
GROUP BY 1, 2, 3 HAVING sum(count) > 0
UNION ALL
SELECT site_id, week_start, questionnaire_default_version(), untagged
FROM weeks WHERE untagged > 0;

-- The items the responses of a site-week could answer: those of its versions; '*' (every item)
-- for a version not in questionnaire_items. No row: the week has no responses.
CREATE VIEW questionnaire_weekly_items AS
SELECT w.site_id, w.week_start, array_agg(DISTINCT coalesce(q.item, '*')) AS items
FROM questionnaire_weekly_versions w
LEFT JOIN questionnaire_items q ON q.version = w.version
GROUP BY 1, 2;

-- 0171's view, same columns, less the rows of indicators no version of the site-week asks.
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
    LEFT JOIN questionnaire_weekly_items asked
        ON asked.site_id = c.site_id AND asked.week_start = c.week_start
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
            (c.promoters - c.detractors)::float8 * 100 / nullif(c.nps_n, 0), false,
            'recommandation'),
        ('ces', 'Effort (part d''accord)', 'wilson', c.ces_n, c.ces_agree,
            c.ces_agree::float8 * 100 / nullif(c.ces_n, 0), false, 'effort'),
        ('fcr_declared', 'Résolution au premier contact (déclarée)', 'wilson', c.fcr_n,
            c.fcr_non, c.fcr_non::float8 * 100 / nullif(c.fcr_n, 0), false,
            'plusieurs_contacts'),
        ('fcr_observed', 'Résolution au premier contact (observée)', 'wilson',
            c.fcr_resolved + c.fcr_repeated, c.fcr_resolved,
            c.fcr_resolved::float8 * 100 / nullif(c.fcr_resolved + c.fcr_repeated, 0),
            c.fcr_pending > 0, NULL),
        ('satisfaction', 'Satisfaction globale (8 à 10)', 'wilson', c.sat_n, c.sat_ok,
            c.sat_ok::float8 * 100 / nullif(c.sat_n, 0), false, 'satisfaction_globale'),
        ('satisfaction_mean', 'Satisfaction globale (moyenne sur 10)', 'none', c.sat_n, NULL,
            c.sat_sum::float8 / nullif(c.sat_n, 0), false, 'satisfaction_globale'),
        ('response_rate', 'Taux de réponse', 'wilson', c.invitations, cohort.answered,
            cohort.answered::float8 * 100 / nullif(c.invitations, 0), cohort.open, NULL)
        ) AS v(indicator, label, interval_kind, n, k, value, provisional, item)
    ) AS f
    WHERE f.item IS NULL OR asked.items IS NULL OR f.item = ANY (asked.items)
        OR '*' = ANY (asked.items)
) AS b;
