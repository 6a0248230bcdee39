-- Issue #14: scoring keeps no inbox row per event. A response counts once by its response id
-- (response_facts' primary key) and an invitation sent by its invitation id (invitation_facts'),
-- claimed in the transaction that counts them (scoring.consumer.ScoringHandler.claim). A fact is
-- the record that its response or invitation was counted: it is kept for the retention after it
-- was counted (`counted_at`), not only after its day, so that a late event (answered long ago)
-- sent again or redelivered cannot count twice once its fact is purged.
ALTER TABLE response_facts ADD COLUMN counted_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE invitation_facts ADD COLUMN counted_at timestamptz NOT NULL DEFAULT now();
