-- Issue #15, "also expected by managers": team results, response rate by survey channel and the
-- reminder's effect, breakdowns by the user's own corrected answers.
--
-- The tallies are keyed by what the response event carries; none of these is there: the team is
-- on the pseudonymous contact (ContactSeen.team), the survey channel and the reminder on the
-- invitation's events, and events come in any order. So each response keeps one small row of
-- its tally cells (ratings and choice codes only, never free text: `domain.tally_rows`) with the
-- ids that join it, at read time, to its invitation, and its contact's team, copied from the
-- contact whichever came first (so team results outlive the contacts' shorter retention).
-- Pseudonymous ids only; purged with the verbatims (same retention); a user's erasure removes
-- the contact id (the team stays: it is no one's personal data).
ALTER TABLE contacts ADD COLUMN team text;

CREATE TABLE response_facts (
    response_id   text PRIMARY KEY,
    invitation_id text NOT NULL,
    contact_id    text,
    site_id       text NOT NULL,
    day           date NOT NULL,
    answered_at   timestamptz NOT NULL,
    channel       text NOT NULL,
    motif         text NOT NULL,
    nature        text NOT NULL DEFAULT '',
    profile       text NOT NULL DEFAULT '',
    team          text,
    cells         jsonb NOT NULL
);
CREATE INDEX response_facts_site_day ON response_facts (site_id, day);
CREATE INDEX response_facts_invitation ON response_facts (invitation_id);
CREATE INDEX response_facts_contact ON response_facts (contact_id);

-- One row per invitation scoring saw sent (survey channel, send day on the site's clock) and
-- when its one reminder went, whichever event came first.
CREATE TABLE invitation_facts (
    invitation_id  text PRIMARY KEY,
    site_id        text NOT NULL,
    survey_channel text,
    sent_day       date,
    sent_at        timestamptz,
    reminded_at    timestamptz
);
CREATE INDEX invitation_facts_site_day ON invitation_facts (site_id, sent_day);
