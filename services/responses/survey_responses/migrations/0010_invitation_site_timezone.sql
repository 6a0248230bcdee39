-- Issue #15: each invitation keeps its site's time zone (InvitationSent.site_timezone, set by
-- survey-dispatch from the site's rules) and its response's event carries it on to scoring
-- (ResponseSubmitted.site_timezone), which buckets days, ISO weeks and months in the site's own
-- clock. Invitations stored before this migration have none: their responses carry none, and
-- scoring falls back to the shared default (contracts.sites.site_clock).
ALTER TABLE invitations ADD COLUMN site_timezone text;
