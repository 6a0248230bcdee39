-- The week's free-text suggestions with their scores, for the managers' weekly report.
-- Internal only: never in an indicators event, never published.
CREATE TABLE verbatims (
    response_id    text PRIMARY KEY,
    site_id        text NOT NULL,
    day            date NOT NULL,
    channel        text NOT NULL,
    motif          text NOT NULL,
    text           text NOT NULL,
    satisfaction   int,
    recommandation int
);
CREATE INDEX verbatims_site_day ON verbatims (site_id, day);
