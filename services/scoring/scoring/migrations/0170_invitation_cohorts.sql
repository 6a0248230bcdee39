-- Issue #18: the response rate by cohort. A row of invitation_tallies is a cohort of invitations
-- (site, send day, channel, motif): `count` invitations sent that day, `answered` answers to
-- those invitations whenever they came (ResponseSubmitted.invited_at gives the send day), and
-- `open_until` when the cohort's last link expires (the rate is provisional until then).
-- A response without invited_at (events older than the field) is counted on its answer day,
-- as the rate was before. A response may arrive before its invitation: its cohort row then
-- starts with count 0 and the invitation adds itself later (every column is additive or a max,
-- so the order of events does not matter and a rebuild gives the same rows).
ALTER TABLE invitation_tallies
    ADD COLUMN answered bigint NOT NULL DEFAULT 0,
    ADD COLUMN open_until timestamptz;

-- The responses counted so far carry no invited_at: each counts on its answer day, as a
-- response without invited_at does from now on (so a rebuild from the topics gives these rows).
-- Their cohorts are closed (no open_until): no link of theirs is known to be open.
INSERT INTO invitation_tallies AS i (site_id, day, channel, motif, count, answered)
SELECT site_id, day, channel, motif, 0, sum(count)::bigint FROM tallies
WHERE item = '__responses__' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (site_id, day, channel, motif) DO UPDATE SET answered = EXCLUDED.answered;
