-- Issue #14: how far the retention purge has deleted (scoring.retention). A rebuild writes again
-- every fact the topics still hold (responses are kept 400 days, their facts 90): it reads this
-- to tell a row the purge deleted from a true difference. One row; a bound never moves back.
CREATE TABLE retention_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    facts_before date NOT NULL,  -- response and invitation facts, verbatims: their day
    contacts_before timestamptz NOT NULL  -- contacts: when they closed
);
