-- The trace of the oldest batch that changed a site since its last publish (W3C traceparent):
-- the site's `indicators updated` event continues it.
ALTER TABLE sites ADD COLUMN traceparent text;
