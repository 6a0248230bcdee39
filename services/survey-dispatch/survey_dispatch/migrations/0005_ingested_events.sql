-- The CloudEvents ids that came through the HTTP ingest (POST /v1/contacts): a repeated id is
-- acknowledged without a second enqueue. `digest` is a keyed HMAC of the event's data (no
-- contact point can be read back from it): the same id with other data is refused, not dropped
-- silently. Forgotten after INBOX_RETENTION_DAYS, like the inbox.
CREATE TABLE ingested_events (
    event_id     text PRIMARY KEY,
    network      text NOT NULL,
    digest       text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingested_events_received_at ON ingested_events (received_at);
