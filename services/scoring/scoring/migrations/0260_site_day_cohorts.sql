-- Issue #14: each site's invitation cohorts per send day (the sums and the maximum of its
-- invitation_tallies rows of that day, every channel and motif), kept by the same statement
-- that adds to invitation_tallies (repository.add_invitations). The publisher reads a site's
-- ~100 send days here instead of summing its ~10 times more rows at every publish (that sum
-- was most of a publish's PostgreSQL time). Sums and maxima: any order of events gives the same
-- rows, and the rebuild compares this table like the others.
CREATE TABLE site_day_cohorts (
    site_id text NOT NULL,
    day date NOT NULL,
    invited bigint NOT NULL,
    answered bigint NOT NULL,
    open_until timestamptz,
    PRIMARY KEY (site_id, day)
) WITH (fillfactor = 70);

INSERT INTO site_day_cohorts (site_id, day, invited, answered, open_until)
SELECT site_id, day, sum(count), sum(answered), max(open_until)
FROM invitation_tallies
GROUP BY site_id, day;
