-- What this service knows of each invitation: no email, no phone, only the token's hash.
CREATE TABLE invitations (
    invitation_id   text PRIMARY KEY,
    token_sha256    text NOT NULL UNIQUE,
    contact_id      text NOT NULL,
    network         text NOT NULL,
    site_id         text NOT NULL,
    site_name       text,
    channel         text NOT NULL,
    motif           text NOT NULL,
    profile         text,
    request_nature  text,
    user_pseudo_id  text,
    questionnaire_version text NOT NULL,
    expires_at      timestamptz NOT NULL
);

-- Saved but not yet submitted answers, resumable from the same link until expiry.
CREATE TABLE drafts (
    invitation_id text PRIMARY KEY REFERENCES invitations (invitation_id),
    answers       jsonb NOT NULL,
    saved_at      timestamptz NOT NULL DEFAULT now()
);

-- One response per invitation: a double tap or a replay stores nothing more.
CREATE TABLE responses (
    response_id    text PRIMARY KEY,
    invitation_id  text NOT NULL UNIQUE REFERENCES invitations (invitation_id),
    answers        jsonb NOT NULL,
    answered_at    timestamptz NOT NULL
);
