-- Reporting view for the network board (deploy/grafana): what each site's latest figures are
-- and which indicators it chose to publish (NULL = the service's default choice).

CREATE VIEW reporting_site_figures AS
SELECT s.site_id, s.network, coalesce(s.site_name, s.site_id) AS site_name, s.computed_at,
    p ->> 'period' AS period, f ->> 'indicator' AS indicator,
    (f ->> 'value')::float8 AS value, (f ->> 'sample_size')::integer AS sample_size,
    c.indicators AS chosen_indicators,
    CASE WHEN c.indicators IS NULL THEN NULL ELSE (f ->> 'indicator') = ANY (c.indicators) END
        AS chosen
FROM site_indicators s
LEFT JOIN site_settings c ON c.site_id = s.site_id
CROSS JOIN LATERAL jsonb_array_elements(s.payload -> 'periods') AS p
CROSS JOIN LATERAL jsonb_array_elements(p -> 'figures') AS f;

-- The schema name is the deployment's (the migrator's search_path), not hard-coded.
DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO grafana_reader', current_schema()); END $$;
GRANT SELECT ON reporting_site_figures TO grafana_reader;
