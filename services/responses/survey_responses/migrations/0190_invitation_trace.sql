-- The trace context the invitation arrived with (W3C traceparent and tracestate): the answer,
-- which comes from a phone without one, continues the contact's trace from there.
ALTER TABLE invitations ADD COLUMN traceparent text, ADD COLUMN tracestate text;
