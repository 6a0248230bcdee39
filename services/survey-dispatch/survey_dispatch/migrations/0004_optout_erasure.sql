-- Each invitation's own opt-out link: only the SHA-256 of its secret is kept (the secret is an
-- HMAC of the invitation id, recomputed when a message is built). NULL on invitations created
-- before this migration, whose links still carry the survey token.
ALTER TABLE invitations ADD COLUMN optout_sha256 text UNIQUE;

-- An opt-out (link or SMS STOP) cancels what is pending for the contact point at once.
CREATE INDEX invitations_address ON invitations (lower(address)) WHERE address IS NOT NULL;

-- Who asked for an erasure, when, in which network, and how much went. Never the user's reference
-- nor their pseudonym: the erasure id is the receipt.
CREATE TABLE erasure_audit (
    erasure_id          text PRIMARY KEY,
    network             text NOT NULL,
    requested_by        text NOT NULL,
    requested_at        timestamptz NOT NULL,
    invitations_erased  int NOT NULL
);
