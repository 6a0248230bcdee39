-- When a site last went from clean to dirty (a consumer's mark), so that a site catching up on
-- old answers waits `publish_catching_up_seconds` from then before its first publish, rather
-- than being published at once with the first batch of a backlog (repository.Pace). NULL for
-- the rows before: they keep the pace of their last publish. Metadata-only: no table rewrite.
ALTER TABLE sites ADD COLUMN dirty_since timestamptz;
