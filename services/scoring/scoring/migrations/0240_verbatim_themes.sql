-- Issue #17: each verbatim's themes, tone and the words that triggered them (scoring.themes.tag,
-- run by the consumer at ingest on the text the responses service already redacted), and the
-- effort answer beside its other scores (the boards read scoring's verbatims, not another
-- schema's). A verbatim stored before this migration has a NULL tone: it reads « non classé »
-- until scoring re-tags it at start (migration 0241, scoring.tagging); never an irritant before.
-- trigger_words: {"themes": {"delais": ["trop long"], ...}, "tone": ["trop long"]}.
ALTER TABLE verbatims
    ADD COLUMN themes text[],
    ADD COLUMN tone text,
    ADD COLUMN trigger_words jsonb,
    ADD COLUMN effort int;
CREATE INDEX verbatims_irritants ON verbatims (site_id, day) WHERE tone = 'irritant';

-- French labels, as scoring.irritants.THEME_LABELS / TONE_LABELS (the tests compare them).
CREATE FUNCTION reporting_theme_label(theme text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE theme
        WHEN 'reponse_personnalisee' THEN 'Réponse personnalisée'
        WHEN 'clarte' THEN 'Clarté de la réponse'
        WHEN 'facilite_contact' THEN 'Facilité pour nous contacter'
        WHEN 'comprehension' THEN 'Compréhension de la demande'
        WHEN 'prise_en_charge' THEN 'Prise en charge de la demande'
        WHEN 'delais' THEN 'Délais de traitement'
        WHEN 'courtoisie' THEN 'Courtoisie'
        WHEN 'autre' THEN 'Autre'
        ELSE theme END
$$;

-- The boards' verbatims (0191) with their themes, tone and trigger words, codes for the
-- filters and French words for the reader. Same rows, same floor.
CREATE OR REPLACE VIEW reporting_verbatims AS
WITH weeks AS (
    SELECT site_id, date_trunc('week', day)::date AS week_start, sum(count) AS responses
    FROM tallies WHERE item = '__responses__' GROUP BY 1, 2
)
SELECT v.response_id, coalesce(s.network, '') AS network, v.site_id, v.channel, v.motif,
    v.day AS answered_at, w.week_start, reporting_iso_week(w.week_start) AS week,
    v.text AS verbatim, v.satisfaction::text AS satisfaction_globale,
    v.recommandation::text AS recommandation, v.effort::text AS effort,
    coalesce(v.themes, '{}') AS theme_codes, coalesce(v.tone, 'non_classe') AS tone_code,
    CASE WHEN v.tone IS NULL THEN 'non classé'
         ELSE coalesce((SELECT string_agg(reporting_theme_label(t), ', ' ORDER BY n)
                        FROM unnest(v.themes) WITH ORDINALITY AS u (t, n)), 'aucun thème')
    END AS themes,
    coalesce(v.tone, 'non classé') AS tone,
    nullif(concat_ws(' ; ',
        (SELECT string_agg(reporting_theme_label(key) || ' : '
                           || (SELECT string_agg(word, ', ')
                               FROM jsonb_array_elements_text(value) AS words (word)),
                           ' ; ' ORDER BY key)
         FROM jsonb_each(v.trigger_words -> 'themes')),
        'ton : ' || (SELECT string_agg(word, ', ')
                     FROM jsonb_array_elements_text(v.trigger_words -> 'tone') AS words (word))
    ), '') AS trigger_words
FROM verbatims v
JOIN weeks w ON w.site_id = v.site_id AND w.week_start = date_trunc('week', v.day)::date
LEFT JOIN sites s ON s.site_id = v.site_id
WHERE reporting_may_show(w.responses);

-- « Principaux irritants »: per site and ISO week at or above the anonymity floor, each theme of
-- the week's irritant verbatims with its count, the mean count of the previous four weeks that
-- had answers, and the trend of its rate per response against those weeks pooled (Newcombe's
-- interval, contracts.figures; scoring.irritants.top_irritants in Python, compared in tests).
CREATE VIEW reporting_weekly_irritants AS
WITH weeks AS (
    SELECT site_id, date_trunc('week', day)::date AS week_start, sum(count)::bigint AS responses
    FROM tallies WHERE item = '__responses__' GROUP BY 1, 2
), irritants AS (
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
GRANT SELECT ON reporting_weekly_irritants TO grafana_reader;

-- The managers' filtered twins: reporting_verbatims' new columns, the new view.
SELECT managers_refresh_views();
