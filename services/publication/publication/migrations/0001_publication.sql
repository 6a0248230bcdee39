-- Read model built from the compacted `scoring.site-indicators.v1` topic (never scoring's tables).
CREATE TABLE site_indicators (
    site_id     text PRIMARY KEY,
    network     text NOT NULL,
    site_name   text,
    computed_at timestamptz NOT NULL,
    payload     jsonb NOT NULL
);

-- What each site chose to publish (site managers' choices).
CREATE TABLE site_settings (
    site_id     text PRIMARY KEY,
    indicators  text[] NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);
