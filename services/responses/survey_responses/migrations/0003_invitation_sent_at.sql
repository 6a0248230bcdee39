-- Issue #18: each response says when its invitation was sent (ResponseSubmitted.invited_at), so
-- scoring counts the answer with its invitation's cohort (the week it was sent in). Invitations
-- stored before this migration have no sent_at: their responses carry none, and scoring counts
-- them on their answer day, as before.
ALTER TABLE invitations ADD COLUMN sent_at timestamptz;
