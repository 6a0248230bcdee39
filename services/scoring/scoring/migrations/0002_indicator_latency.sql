-- Event time of the oldest response a site's next indicators event will include, so the
-- publisher can measure "response submitted -> indicators event" (a Prometheus histogram).
ALTER TABLE sites ADD COLUMN pending_since timestamptz;

-- Breakdown queries filter one site and a day range, then group by one dimension.
CREATE INDEX tallies_site_day ON tallies (site_id, day);

-- Site-level rollup of `tallies` (no breakdown columns), kept in the same transaction: the
-- published figures read it, so their cost follows days x answer values, not the number of
-- breakdown cells (which can exceed the number of responses). Backfilled from the tallies.
CREATE TABLE site_day_tallies (
    site_id  text NOT NULL,
    day      date NOT NULL,
    item     text NOT NULL,
    value    text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (site_id, day, item, value)
);
INSERT INTO site_day_tallies (site_id, day, item, value, count)
SELECT site_id, day, item, value, sum(count) FROM tallies GROUP BY 1, 2, 3, 4;
