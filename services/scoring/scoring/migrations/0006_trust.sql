-- Issue #12 (Trust), the tables part. The contacts' pseudonym switch comes in 0101: the 0100
-- views read contacts.user_hash, and a fresh database applies 0006 before 0100.

-- The anonymity floor the reporting views apply, one row written by the service at start from
-- its settings (ANONYMITY_FLOOR): the boards, the e-mail and the API use the same number.
CREATE TABLE reporting_settings (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    anonymity_floor integer NOT NULL CHECK (anonymity_floor >= 1),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO reporting_settings (anonymity_floor) VALUES (5);

-- Free text never travels to the call-back queue, nor stays in an alert.
UPDATE alerts SET answers = answers - 'suggestion';

-- Erasure: alerts and verbatims know their user's pseudonym (copied from the contacts, whichever
-- arrives first), so an erasure finds them after the contacts themselves are purged; an erased
-- user's alert stays (an anonymous count) but loses its contact id.
ALTER TABLE alerts ALTER COLUMN contact_id DROP NOT NULL;
ALTER TABLE alerts ADD COLUMN user_pseudo_id text;
ALTER TABLE verbatims ADD COLUMN contact_id text;
ALTER TABLE verbatims ADD COLUMN user_pseudo_id text;
CREATE INDEX alerts_user ON alerts (user_pseudo_id) WHERE user_pseudo_id IS NOT NULL;
CREATE INDEX alerts_unlinked_contact ON alerts (contact_id) WHERE user_pseudo_id IS NULL;
CREATE INDEX verbatims_user ON verbatims (user_pseudo_id) WHERE user_pseudo_id IS NOT NULL;
CREATE INDEX verbatims_unlinked_contact ON verbatims (contact_id) WHERE user_pseudo_id IS NULL;

-- Retention purges scan by age.
CREATE INDEX alerts_raised_at ON alerts (raised_at);
CREATE INDEX verbatims_day ON verbatims (day);
CREATE INDEX contacts_closed_at ON contacts (closed_at);
CREATE INDEX inbox_topic_received_at ON inbox (topic, received_at);
