-- Issue #15, what managers read: team results and the response rate by survey channel (with the
-- reminder's effect) on the Grafana board, as scoring's API and CSV give them (scoring.extras).
-- Per site and ISO week on the site's own clock: response and send days are already the site's
-- (response_facts.day, invitation_facts.sent_day). One floor rule: reporting_may_show.

-- A team's results: only a team-week with at least the floor's answers is listed, and each
-- figure is blanked when fewer than the floor answered its item. The team at most, never an
-- agent (ContactSeen carries no agent); responses whose team is unknown are left out.
CREATE VIEW reporting_team_results AS
SELECT r.site_id, coalesce(s.network, '') AS network, coalesce(s.site_name, r.site_id) AS site_name,
    date_trunc('week', r.day)::date AS week_start,
    reporting_iso_week(date_trunc('week', r.day)::date) AS week,
    r.team, count(*) AS responses,
    CASE WHEN reporting_may_show(count(*) FILTER (WHERE r.cells ->> 'satisfaction_globale' ~ '^[0-9]+$'))
         THEN round(100.0 * count(*) FILTER (
                  WHERE r.cells ->> 'satisfaction_globale' ~ '^[0-9]+$'
                    AND (r.cells ->> 'satisfaction_globale')::int >= 8)
              / count(*) FILTER (WHERE r.cells ->> 'satisfaction_globale' ~ '^[0-9]+$'), 1)
    END AS satisfaction_pct,
    CASE WHEN reporting_may_show(count(*) FILTER (WHERE r.cells ->> 'recommandation' ~ '^[0-9]+$'))
         THEN round(100.0 * (count(*) FILTER (
                  WHERE r.cells ->> 'recommandation' ~ '^[0-9]+$'
                    AND (r.cells ->> 'recommandation')::int >= 9)
              - count(*) FILTER (
                  WHERE r.cells ->> 'recommandation' ~ '^[0-9]+$'
                    AND (r.cells ->> 'recommandation')::int <= 6))
              / count(*) FILTER (WHERE r.cells ->> 'recommandation' ~ '^[0-9]+$'), 1)
    END AS nps
FROM response_facts r LEFT JOIN sites s ON s.site_id = r.site_id
WHERE r.team IS NOT NULL AND r.team <> ''
GROUP BY r.site_id, s.network, s.site_name, date_trunc('week', r.day)::date, r.team
HAVING reporting_may_show(count(*));
GRANT SELECT ON reporting_team_results TO grafana_reader;

-- Per survey channel (e-mail, SMS) and ISO week of sending: invitations sent, reminded,
-- answered (an invitation's first answer), the response rate, the rate before any reminder, the
-- share of reminded invitations answered after their reminder and the share of answers that came
-- after it (domain.survey_channel_rows). Rates are blanked under the floor's answers.
CREATE VIEW reporting_survey_channels AS
WITH answers AS (  -- by site too, so a board's site filter reaches response_facts_site_day
    SELECT site_id, invitation_id, min(answered_at) AS answered_at FROM response_facts
    GROUP BY 1, 2
), counts AS (
    SELECT f.site_id, date_trunc('week', f.sent_day)::date AS week_start,
        coalesce(f.survey_channel, 'inconnu') AS survey_channel,
        count(*) AS sent, count(f.reminded_at) AS reminded, count(a.answered_at) AS answered,
        count(*) FILTER (WHERE a.answered_at IS NOT NULL
                         AND (f.reminded_at IS NULL OR a.answered_at < f.reminded_at)) AS before,
        count(*) FILTER (WHERE a.answered_at >= f.reminded_at) AS after
    FROM invitation_facts f LEFT JOIN answers a USING (site_id, invitation_id)
    WHERE f.sent_day IS NOT NULL
    GROUP BY 1, 2, 3
)
SELECT c.site_id, coalesce(s.network, '') AS network, coalesce(s.site_name, c.site_id) AS site_name,
    c.week_start, reporting_iso_week(c.week_start) AS week, c.survey_channel,
    c.sent AS invitations, c.reminded, c.answered AS responses,
    CASE WHEN reporting_may_show(c.answered) THEN round(100.0 * c.answered / c.sent, 1) END
        AS response_rate_pct,
    CASE WHEN reporting_may_show(c.answered) THEN round(100.0 * c.before / c.sent, 1) END
        AS rate_before_reminder_pct,
    CASE WHEN reporting_may_show(c.answered) AND c.reminded > 0
         THEN round(100.0 * least(c.after, c.reminded) / c.reminded, 1) END
        AS reminded_answered_pct,
    CASE WHEN reporting_may_show(c.answered) AND c.answered > 0
         THEN round(100.0 * c.after / c.answered, 1) END AS answers_after_reminder_pct
FROM counts c LEFT JOIN sites s ON s.site_id = c.site_id;
GRANT SELECT ON reporting_survey_channels TO grafana_reader;

-- The managers' filtered twins (0191): fail-closed until refreshed.
SELECT managers_refresh_views();
