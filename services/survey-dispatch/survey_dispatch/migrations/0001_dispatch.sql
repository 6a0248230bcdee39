-- Rules are data an administrator changes: network defaults and per-site overrides (JSON).
CREATE TABLE rules (
    network    text NOT NULL,
    site_id    text NOT NULL DEFAULT '',     -- '' = the network's defaults
    rules      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT 'migration',
    PRIMARY KEY (network, site_id)
);

CREATE TABLE rules_audit (
    id         bigserial PRIMARY KEY,
    network    text NOT NULL,
    site_id    text NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    before     jsonb,
    after      jsonb
);

-- One row per contact id, whatever happens: the "one survey per contact" rule.
CREATE TABLE contacts (
    contact_id text PRIMARY KEY,
    network    text NOT NULL,
    site_id    text NOT NULL,
    decided_at timestamptz NOT NULL,
    decision   text NOT NULL,               -- 'invite' or a suppression reason
    detail     text NOT NULL DEFAULT ''
);

CREATE TABLE invitations (
    invitation_id   text PRIMARY KEY,
    contact_id      text NOT NULL UNIQUE REFERENCES contacts (contact_id),
    network         text NOT NULL,
    site_id         text NOT NULL,
    site_name       text,
    channel         text NOT NULL,
    motif           text NOT NULL,
    profile         text,
    request_nature  text,
    user_pseudo_id  text NOT NULL,
    survey_channel  text NOT NULL,
    address         text,                    -- personal data: erased at expiry
    token           text,                    -- the link's secret: erased at expiry
    token_sha256    text NOT NULL UNIQUE,
    questionnaire_version text NOT NULL,
    closed_at       timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'scheduled',  -- scheduled, sent, failed, expired
    send_at         timestamptz NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    last_error      text,
    sent_at         timestamptz,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invitations_due ON invitations (send_at) WHERE status = 'scheduled';
CREATE INDEX invitations_fatigue ON invitations (network, user_pseudo_id, created_at DESC);

CREATE TABLE opt_outs (
    network     text NOT NULL,
    subject     text NOT NULL,              -- HMAC of the user reference, email or phone
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (network, subject)
);

INSERT INTO rules (network, site_id, rules) VALUES ('*', '', '{}');
