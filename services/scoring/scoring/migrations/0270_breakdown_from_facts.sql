-- Issue #14: the breakdown by channel, motif, nature and profile is read from the response facts
-- instead of being kept a second time. Each response already has its fact row (the claim that
-- counts it once) with its breakdown key and its tally cells; the breakdown vectors repeated
-- them, nearly one row per response (keys site x day x channel x motif x nature x profile are
-- nearly unique), and keeping that second row cost half of scoring's and PostgreSQL's work per
-- response. What scoring keeps up to date now grows with sites x days x cells only:
-- `site_day_vectors`, the publisher's and the weekly figures' source.
--
-- Facts are deleted after the verbatims' retention (repository.purge); the purge first adds
-- them to `tally_vectors`, which now holds only the breakdowns whose facts are gone (and rows
-- inserted by hand into `tallies`). The view `tallies` sums both: same columns, same counts.

-- What the facts hold is taken out of the vectors, so that vectors + facts = the old vectors
-- exactly (a cell both sides cancel out is dropped; counts cannot go wrong whatever is there:
-- every cell of a fact gets its position first, so none is left out of the subtraction).
INSERT INTO tally_cells (item, value)
SELECT DISTINCT e.key, e.value FROM response_facts, jsonb_each_text(cells) AS e
ORDER BY 1, 2 ON CONFLICT DO NOTHING;

CREATE TEMP TABLE archived ON COMMIT DROP AS
WITH cells AS (
    SELECT t.site_id, t.day, t.channel, t.motif, t.nature, t.profile, u.position::integer,
           u.n::bigint
    FROM tally_vectors t
    CROSS JOIN LATERAL unnest(t.counts) WITH ORDINALITY AS u(n, position)
    WHERE u.n <> 0
    UNION ALL
    SELECT f.site_id, f.day, f.channel, f.motif, f.nature, f.profile, c.position, -count(*)
    FROM response_facts f
    CROSS JOIN LATERAL jsonb_each_text(f.cells) AS e(item, value)
    JOIN tally_cells c ON c.item = e.item AND c.value = e.value
    GROUP BY 1, 2, 3, 4, 5, 6, 7
), kept AS (
    SELECT site_id, day, channel, motif, nature, profile, position, sum(n)::bigint AS n
    FROM cells GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(n) <> 0
)
SELECT site_id, day, channel, motif, nature, profile,
       (SELECT array_agg(coalesce(x.n, 0)::integer ORDER BY g.p)
        FROM generate_series(1, max(position)) AS g(p)
        LEFT JOIN unnest(array_agg(position), array_agg(n)) AS x(p, n) ON x.p = g.p) AS counts
FROM kept GROUP BY 1, 2, 3, 4, 5, 6;

DELETE FROM tally_vectors;
INSERT INTO tally_vectors (site_id, day, channel, motif, nature, profile, counts)
SELECT * FROM archived ORDER BY 1, 2, 3, 4, 5, 6;

-- The breakdown: the archived vectors plus the facts still kept. A filter on the site and the
-- day reaches both sides (and the facts' index on them).
CREATE OR REPLACE VIEW tallies AS
SELECT site_id, day, channel, motif, nature, profile, item, value, sum(n)::bigint AS count
FROM (
    SELECT t.site_id, t.day, t.channel, t.motif, t.nature, t.profile, c.item, c.value, u.n
    FROM tally_vectors t
    CROSS JOIN LATERAL unnest(t.counts) WITH ORDINALITY AS u(n, position)
    JOIN tally_cells c ON c.position = u.position
    WHERE u.n <> 0
    UNION ALL
    SELECT f.site_id, f.day, f.channel, f.motif, f.nature, f.profile, e.item, e.value, 1
    FROM response_facts f
    CROSS JOIN LATERAL jsonb_each_text(f.cells) AS e(item, value)
) AS cells
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
HAVING sum(n) <> 0;

-- An insert into `tallies` (seeding, manual corrections) still adds to the archived vectors and
-- the site-day vectors: counts of responses that have no fact. An insert into
-- `site_day_tallies` adds to the site-day vectors only: with the facts of the same responses,
-- what the consumer writes. Both triggers turn their row into a vector the same way.
CREATE FUNCTION tally_cell_vector(item text, value text, count bigint) RETURNS integer[]
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    cell integer;
    one integer[];
BEGIN
    INSERT INTO tally_cells AS c (item, value) VALUES ($1, $2) ON CONFLICT DO NOTHING;
    SELECT c.position INTO cell FROM tally_cells c WHERE c.item = $1 AND c.value = $2;
    one := array_fill(0, ARRAY[cell]);
    one[cell] := $3;
    RETURN one;
END
$$;

CREATE FUNCTION site_day_tallies_add_row() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO site_day_vectors AS t (site_id, day, counts)
    VALUES (NEW.site_id, NEW.day, tally_cell_vector(NEW.item, NEW.value, NEW.count))
    ON CONFLICT (site_id, day) DO UPDATE SET counts = tally_add(t.counts, EXCLUDED.counts);
    RETURN NEW;
END
$$;
CREATE TRIGGER site_day_tallies_add_row INSTEAD OF INSERT ON site_day_tallies
FOR EACH ROW EXECUTE FUNCTION site_day_tallies_add_row();

-- 0151's trigger on `tallies`: its vector, then the site-day part by the trigger above.
CREATE OR REPLACE FUNCTION tallies_add_row() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO tally_vectors AS t (site_id, day, channel, motif, nature, profile, counts)
    VALUES (NEW.site_id, NEW.day, NEW.channel, NEW.motif, coalesce(NEW.nature, ''),
            coalesce(NEW.profile, ''), tally_cell_vector(NEW.item, NEW.value, NEW.count))
    ON CONFLICT (site_id, day, channel, motif, nature, profile)
    DO UPDATE SET counts = tally_add(t.counts, EXCLUDED.counts);
    INSERT INTO site_day_tallies (site_id, day, item, value, count)
    VALUES (NEW.site_id, NEW.day, NEW.item, NEW.value, NEW.count);
    RETURN NEW;
END
$$;

-- 0211 read the two pseudo-items from the breakdown vectors; the site-day vectors hold the
-- same counts per site and day (same columns and rows).
CREATE OR REPLACE VIEW questionnaire_weekly_versions AS
WITH cells AS (
    SELECT t.site_id, date_trunc('week', t.day)::date AS week_start, c.item, c.value,
        sum(t.counts[c.position]) AS n
    FROM site_day_vectors t
    CROSS JOIN tally_cells c
    WHERE c.item IN ('__responses__', '__version__') AND t.counts[c.position] <> 0
    GROUP BY 1, 2, 3, 4
), weeks AS (
    SELECT site_id, week_start,
        coalesce(sum(n) FILTER (WHERE item = '__responses__'), 0)
        - coalesce(sum(n) FILTER (WHERE item = '__version__'), 0) AS untagged
    FROM cells GROUP BY 1, 2
)
SELECT site_id, week_start, value AS version, n::numeric AS responses
FROM cells WHERE item = '__version__' AND n > 0
UNION ALL
SELECT site_id, week_start, questionnaire_default_version(), untagged::numeric
FROM weeks WHERE untagged > 0;

-- The weekly views that need no breakdown read the site-day vectors (a row per site and day)
-- rather than `tallies` (now a row per response and cell): the site weekly board's view took
-- 2.0 s on 50,000 responses over `tallies`' vectors, 2.9 s over the facts, 0.32 s now. Its
-- CTEs are NOT MATERIALIZED, as 0242's, so that a site's board reads that site only: 0.28 s
-- -> 0.045 s for one site; all sites, 0.32 -> 0.45 s (each CTE is read twice). Same columns
-- and rows as 0180's and 0100's.
CREATE VIEW reporting_site_day_ratings AS
SELECT site_id, day, date_trunc('week', day)::date AS week_start, item, value,
       CASE WHEN value ~ '^-?[0-9]+$' THEN value::integer END AS rating, count
FROM site_day_tallies;

CREATE OR REPLACE VIEW reporting_weekly_counts AS
WITH answers AS NOT MATERIALIZED (
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
    FROM reporting_site_day_ratings GROUP BY site_id, week_start
), invitations AS NOT MATERIALIZED (
    SELECT site_id, date_trunc('week', day)::date AS week_start, sum(count) AS invitations
    FROM invitation_tallies GROUP BY 1, 2
), closed AS NOT MATERIALIZED (
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
), weeks AS NOT MATERIALIZED (
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


CREATE OR REPLACE VIEW reporting_weekly_themes AS
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
FROM reporting_site_day_ratings t
LEFT JOIN sites s ON s.site_id = t.site_id
WHERE t.item LIKE 'theme\_%' AND t.rating IS NOT NULL
GROUP BY t.site_id, s.network, t.week_start, t.item
HAVING sum(t.count) >= reporting_anonymity_floor();


-- The breakdown board reads the three cells it shows, not every cell of every response: the
-- facts' two ratings by key, and the archived vectors' cells of those items (same columns as
-- reporting_tally_ratings, fewer rows). Same columns and rows as 0101's view.
CREATE VIEW reporting_breakdown_ratings AS
WITH cells AS (
    SELECT t.site_id, t.day, t.channel, t.motif, c.item, c.value, u.n::bigint AS count
    FROM tally_vectors t
    CROSS JOIN LATERAL unnest(t.counts) WITH ORDINALITY AS u(n, position)
    JOIN tally_cells c ON c.position = u.position
    WHERE u.n <> 0 AND c.item IN ('__responses__', 'satisfaction_globale', 'recommandation')
    UNION ALL
    SELECT f.site_id, f.day, f.channel, f.motif, e.item, e.value, 1
    FROM response_facts f
    CROSS JOIN LATERAL (VALUES ('__responses__', f.cells->>'__responses__'),
                               ('satisfaction_globale', f.cells->>'satisfaction_globale'),
                               ('recommandation', f.cells->>'recommandation')) AS e(item, value)
    WHERE e.value IS NOT NULL
)
SELECT site_id, day, date_trunc('week', day)::date AS week_start, channel, motif, item, value,
       CASE WHEN value ~ '^-?[0-9]+$' THEN value::integer END AS rating, count
FROM cells;

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
FROM reporting_breakdown_ratings t
LEFT JOIN sites s ON s.site_id = t.site_id
GROUP BY t.site_id, s.network, t.week_start, GROUPING SETS ((t.channel), (t.motif))
HAVING reporting_may_show(sum(t.count) FILTER (WHERE t.item = '__responses__'));

-- The verbatims' weekly response counts (the floor) from the site-day vectors too. Same
-- columns and rows as 0240's view.
CREATE OR REPLACE VIEW reporting_verbatims AS
WITH weeks AS (
    SELECT site_id, date_trunc('week', day)::date AS week_start, sum(count) AS responses
    FROM site_day_tallies WHERE item = '__responses__' GROUP BY 1, 2
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
