-- Publishers no longer lock a site's row while they compute and send its figures (the
-- consumers' mark of the same row waited behind them): each mark counts up `dirty_seq`, and a
-- publish clears `dirty` only when the count is still the one it read before its snapshot.
-- Metadata-only on PostgreSQL 11+ (a constant default): no table rewrite.
ALTER TABLE sites ADD COLUMN dirty_seq bigint NOT NULL DEFAULT 0;
