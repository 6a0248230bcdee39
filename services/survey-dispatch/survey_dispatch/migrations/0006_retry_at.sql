-- A send that failed rests until `retry_at` but keeps its `send_at`, so once its backoff is
-- over it goes before the invitations that fell due after it. It used to move `send_at`, which
-- put a mail that had maybe been delivered (a relay that stored it, then hung) behind the whole
-- backlog: its user held a link unknown to responses for minutes.
ALTER TABLE invitations ADD COLUMN retry_at timestamptz;
