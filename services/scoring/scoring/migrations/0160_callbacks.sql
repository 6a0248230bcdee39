-- Issue #15: call-backs that close. The CRMs report each detractor alert's call-back on
-- crm.callback.completed.v1 (contracts.events.CallbackCompleted); scoring records every report
-- once (callback_id) and the alert keeps its EARLIEST completion (handled_at, outcome, team):
-- « handled within 48 h » is the first call-back's delay, whatever came after or arrived late.
-- No agent is known: a team at most.
ALTER TABLE alerts
    ADD COLUMN outcome text,
    ADD COLUMN team text,
    ADD COLUMN callback_id text;

-- Every report, as received (the audit of an alert's call-backs). Retention follows the alert.
CREATE TABLE callbacks (
    callback_id  text PRIMARY KEY,
    alert_id     text NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    site_id      text NOT NULL,
    outcome      text NOT NULL,
    team         text,
    completed_at timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callbacks_alert ON callbacks (alert_id);

-- Open alerts per site (the weekly e-mail, the API, the gauge of overdue alerts).
CREATE INDEX alerts_open ON alerts (site_id, raised_at) WHERE handled_at IS NULL;
CREATE INDEX alerts_site_raised ON alerts (site_id, raised_at);

-- The rule that makes a detractor, per network (scoring.domain.DetractorRule), set through the
-- audited admin API; a network without a row uses the default rule.
CREATE TABLE detractor_rules (
    network    text PRIMARY KEY,
    rule       jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);
CREATE TABLE detractor_rules_audit (
    id         bigserial PRIMARY KEY,
    network    text NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    before     jsonb,
    after      jsonb
);
CREATE INDEX detractor_rules_audit_network ON detractor_rules_audit (network, id);

-- One row per alert for the boards: its week, whether and how fast it was handled, its outcome
-- in French, and the age of an open one. No contact id: the call-back list is reporting_alerts.
CREATE VIEW reporting_alert_outcomes AS
SELECT a.alert_id, a.network, a.site_id, a.raised_at, a.handled_at,
    date_trunc('week', a.raised_at AT TIME ZONE 'Europe/Paris')::date AS week_start,
    reporting_iso_week(date_trunc('week', a.raised_at AT TIME ZONE 'Europe/Paris')::date) AS week,
    a.handled_at IS NOT NULL AS handled,
    a.handled_at IS NOT NULL AND a.handled_at - a.raised_at <= interval '48 hours'
        AS handled_within_48h,
    a.handled_at IS NOT NULL AND a.handled_at - a.raised_at <= interval '7 days'
        AS handled_within_7d,
    a.outcome,
    CASE a.outcome
        WHEN 'rappele_resolu' THEN 'rappelé et résolu'
        WHEN 'rappele_sans_solution' THEN 'rappelé sans solution'
        WHEN 'injoignable' THEN 'injoignable'
        WHEN 'refus' THEN 'refus'
    END AS outcome_label,
    a.team,
    CASE WHEN a.handled_at IS NULL
        THEN floor(extract(epoch FROM now() - a.raised_at) / 86400)::integer END AS open_age_days
FROM alerts a;

-- Per site and ISO week of raising: alerts raised, handled within 48 h and 7 days, outcomes,
-- still open (scoring.domain.callback_week is the same count).
CREATE VIEW reporting_weekly_callbacks AS
SELECT site_id, network, week_start, week,
    count(*) AS raised,
    count(*) FILTER (WHERE handled) AS handled,
    count(*) FILTER (WHERE handled_within_48h) AS handled_within_48h,
    count(*) FILTER (WHERE handled_within_7d) AS handled_within_7d,
    count(*) FILTER (WHERE NOT handled) AS open,
    count(*) FILTER (WHERE outcome = 'rappele_resolu') AS rappele_resolu,
    count(*) FILTER (WHERE outcome = 'rappele_sans_solution') AS rappele_sans_solution,
    count(*) FILTER (WHERE outcome = 'injoignable') AS injoignable,
    count(*) FILTER (WHERE outcome = 'refus') AS refus,
    max(open_age_days) AS oldest_open_age_days
FROM reporting_alert_outcomes
GROUP BY site_id, network, week_start, week;

GRANT SELECT ON reporting_alert_outcomes, reporting_weekly_callbacks TO grafana_reader;
