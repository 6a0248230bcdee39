-- Issue #17: which version of the tagger (scoring.themes: a digest of its source) tagged each
-- verbatim. At start scoring re-tags, in the background, every verbatim no version or another
-- version tagged (stored before 0240, or before a lexicon change): the board, the e-mail and the
-- irritants' trend compare verbatims tagged alike, and `scoring rebuild` (which tags with the
-- running version) finds the same rows as the live table.
ALTER TABLE verbatims ADD COLUMN tagger text;
