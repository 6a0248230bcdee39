-- The trace context of the `contact closed` event an invitation comes from (W3C traceparent and
-- tracestate), so the events of its later send, reminder or failure continue that trace.
ALTER TABLE invitations ADD COLUMN traceparent text, ADD COLUMN tracestate text;
