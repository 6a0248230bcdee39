-- Erasure (a `user erased` event) unlinks an invitation from its user: no CRM contact id, no
-- pseudonym left, and the link closes (erased_at). Its anonymous ratings stay, so published
-- figures do not change; its free text and its draft go.
ALTER TABLE invitations ALTER COLUMN contact_id DROP NOT NULL;
ALTER TABLE invitations ADD COLUMN erased_at timestamptz;
CREATE INDEX invitations_by_user ON invitations (network, user_pseudo_id)
    WHERE user_pseudo_id IS NOT NULL;
-- The retention task drops free text past its retention, oldest answers first.
CREATE INDEX responses_by_answered_at ON responses (answered_at);
