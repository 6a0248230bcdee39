-- Issue #15: no reader looks response facts up by invitation (the survey-channel counts read a
-- site's answers from their send day on, through response_facts_site_day); the index only cost
-- every response an index entry.
DROP INDEX response_facts_invitation;
