-- Reminders need to know who answered; the purge and erasure need to find rows quickly.
ALTER TABLE invitations
    ADD COLUMN answered_at timestamptz,
    ADD COLUMN remind_at   timestamptz,          -- NULL: no reminder due (none, done, answered)
    ADD COLUMN reminded_at timestamptz,
    ADD COLUMN reminder_attempts int NOT NULL DEFAULT 0;

CREATE INDEX invitations_reminders_due ON invitations (remind_at)
    WHERE status = 'sent' AND remind_at IS NOT NULL;
-- Rows still holding personal data, by the moment it must be erased.
CREATE INDEX invitations_personal_data ON invitations (expires_at)
    WHERE address IS NOT NULL OR token IS NOT NULL;
CREATE INDEX invitations_user ON invitations (user_pseudo_id);
