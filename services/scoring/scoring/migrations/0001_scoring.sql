-- Additive tallies: counts per answer value, per site, day (event time) and breakdown.
-- Any window's indicators are pure functions of these sums.
CREATE TABLE tallies (
    site_id  text NOT NULL,
    day      date NOT NULL,
    channel  text NOT NULL,
    motif    text NOT NULL,
    nature   text NOT NULL DEFAULT '',
    profile  text NOT NULL DEFAULT '',
    item     text NOT NULL,
    value    text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (site_id, day, channel, motif, nature, profile, item, value)
);

CREATE TABLE invitation_tallies (
    site_id  text NOT NULL,
    day      date NOT NULL,
    channel  text NOT NULL,
    motif    text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (site_id, day, channel, motif)
);

-- Closed contacts, for observed first-contact resolution (réitération).
CREATE TABLE contacts (
    contact_id text PRIMARY KEY,
    site_id    text NOT NULL,
    network    text NOT NULL,
    user_hash  text NOT NULL,
    channel    text NOT NULL,
    motif      text NOT NULL,
    closed_at  timestamptz NOT NULL
);
CREATE INDEX contacts_user_motif ON contacts (user_hash, motif, closed_at);
CREATE INDEX contacts_site_time ON contacts (site_id, closed_at);

CREATE TABLE sites (
    site_id           text PRIMARY KEY,
    network           text NOT NULL,
    site_name         text,
    dirty             boolean NOT NULL DEFAULT true,
    last_published_at timestamptz
);

CREATE TABLE alerts (
    alert_id      text PRIMARY KEY,
    invitation_id text NOT NULL UNIQUE,
    contact_id    text NOT NULL,
    site_id       text NOT NULL,
    network       text NOT NULL,
    reasons       text[] NOT NULL,
    answers       jsonb NOT NULL,
    raised_at     timestamptz NOT NULL,
    handled_at    timestamptz
);
