"""The Grafana boards as code: writes deploy/grafana/dashboards/*.json.

    uv run python deploy/grafana/build.py          # regenerate the committed JSON
    uv run python deploy/grafana/build.py --check  # exit 1 when the JSON drifted from this code

Plain dicts in Grafana's dashboard JSON model (schemaVersion 39) rather than
grafana-foundation-sdk: the boards are simple, and plain data keeps the generator free of a
dependency whose builders change with each Grafana release.

SQL panels read only the services' `reporting_*` views (role grafana_reader), never their
tables. The anonymity floor (5 answers, no individual agent) is enforced by those views, so
no panel can bypass it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARD_DIR = HERE / "dashboards"

POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "enquetes-postgres"}
PROMETHEUS = {"type": "prometheus", "uid": "enquetes-prometheus"}

Panel = dict[str, Any]
NO_FIGURE = "Aucun chiffre cette semaine : pas de réponse, ou question non posée"

# --------------------------------------------------------------------------- building blocks


def sql_target(sql: str, fmt: str = "table") -> dict[str, Any]:
    return {
        "refId": "A",
        "datasource": POSTGRES,
        "editorMode": "code",
        "format": fmt,
        "rawQuery": True,
        "rawSql": " ".join(sql.split()),
    }


def prom_target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"refId": ref, "datasource": PROMETHEUS, "expr": expr, "legendFormat": legend}


def panel(
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    *,
    w: int,
    h: int,
    description: str = "",
    **options: Any,
) -> Panel:
    datasource = targets[0]["datasource"]
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": targets,
        "gridPos": {"w": w, "h": h},
        **options,
    }


def stat(title: str, sql: str, *, unit: str, description: str = "") -> Panel:
    """A figure with its n, interval and change: every numeric column of the row is shown."""
    return panel(
        "stat",
        title,
        [sql_target(sql)],
        w=4,
        h=6,
        description=description,
        fieldConfig={
            # No row: no answer this week, or a question this site's questionnaire does not ask
            # (an SMS-only site has no NPS) — said in French rather than Grafana's « No data ».
            "defaults": {"unit": unit, "decimals": 1, "noValue": NO_FIGURE},
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": "n"},
                    "properties": [{"id": "unit", "value": "none"}, {"id": "decimals", "value": 0}],
                },
            ],
        },
        options={
            # All fields, text too: the change is told in words (« stable (écart dans la marge
            # d'incertitude) »), never as a bare number or an arrow on noise.
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/.*/", "values": False},
            "textMode": "value_and_name",
            "colorMode": "none",
            "graphMode": "none",
            "showPercentChange": False,
        },
    )


def table(title: str, sql: str, *, w: int = 12, h: int = 8, description: str = "") -> Panel:
    return panel(
        "table",
        title,
        [sql_target(sql)],
        w=w,
        h=h,
        description=description,
        options={"showHeader": True},
        fieldConfig={"defaults": {"custom": {"filterable": True}}, "overrides": []},
    )


def bar_chart(
    title: str, sql: str, *, unit: str, w: int = 12, h: int = 8, description: str = ""
) -> Panel:
    return panel(
        "barchart",
        title,
        [sql_target(sql)],
        w=w,
        h=h,
        description=description,
        options={"orientation": "horizontal", "showValue": "always"},
        fieldConfig={"defaults": {"unit": unit, "decimals": 1}, "overrides": []},
    )


def sql_series(title: str, sql: str, *, unit: str, w: int = 12, description: str = "") -> Panel:
    return panel(
        "timeseries",
        title,
        [sql_target(sql, fmt="time_series")],
        w=w,
        h=8,
        description=description,
        fieldConfig={"defaults": {"unit": unit}, "overrides": []},
    )


def prom_series(
    title: str, queries: list[tuple[str, str]], *, unit: str, description: str = ""
) -> Panel:
    targets = [
        prom_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)
    ]
    return panel(
        "timeseries",
        title,
        targets,
        w=12,
        h=8,
        description=description,
        fieldConfig={"defaults": {"unit": unit}, "overrides": []},
    )


def sql_variable(name: str, label: str, sql: str) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": POSTGRES,
        "query": " ".join(sql.split()),
        "refresh": 1,
        "sort": 0,
        "includeAll": False,
        "multi": False,
    }


def custom_variable(name: str, label: str, values: list[str]) -> dict[str, Any]:
    return {
        "type": "custom",
        "name": name,
        "label": label,
        "query": ",".join(values),
        "current": {"text": values[0], "value": values[0]},
        "options": [{"text": v, "value": v, "selected": i == 0} for i, v in enumerate(values)],
    }


def labelled_variable(name: str, label: str, options: list[tuple[str, str]]) -> dict[str, Any]:
    """A fixed list shown in words, its value a code (Grafana's « text : value » custom list)."""
    first_text, first_value = options[0]
    return {
        "type": "custom",
        "name": name,
        "label": label,
        "query": ",".join(f"{text} : {value}" for text, value in options),
        "current": {"text": first_text, "value": first_value},
        "options": [
            {"text": text, "value": value, "selected": i == 0}
            for i, (text, value) in enumerate(options)
        ],
    }


def text_variable(name: str, label: str, default: str = "") -> dict[str, Any]:
    return {
        "type": "textbox",
        "name": name,
        "label": label,
        "query": default,
        "current": {"text": default, "value": default},
    }


def constant(name: str, value: str) -> dict[str, Any]:
    return {"type": "constant", "name": name, "query": value, "hide": 2}


def layout(panels: list[Panel]) -> list[Panel]:
    """Flow panels left to right on Grafana's 24-column grid, and number them."""
    x = y = row_height = 0
    for panel_id, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if x + grid["w"] > 24:
            x, y, row_height = 0, y + row_height, 0
        grid.update(x=x, y=y)
        x += grid["w"]
        row_height = max(row_height, grid["h"])
        item["id"] = panel_id
    return panels


def dashboard(
    uid: str,
    title: str,
    panels: list[Panel],
    variables: list[dict[str, Any]],
    *,
    time_from: str = "now-90d",
    refresh: str = "",
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["enquetes"],
        # Times (not the day and week buckets, which the views put on each site's clock) on the
        # reader's own clock: a manager in Guadeloupe reads Guadeloupe times, not Paris's.
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "time": {"from": time_from, "to": "now"},
        "refresh": refresh,
        "templating": {"list": variables},
        "panels": layout(panels),
        "links": [{"title": "Tableaux enquêtes", "type": "dashboards", "tags": ["enquetes"]}],
    }


# --------------------------------------------------------------------------- site manager's board

SITE_WEEK = "site_id = '${site}' AND week = '${week}'"
# Issue #17: the tagger's themes and tones (scoring.themes; deploy never imports a service, the
# tests compare the lists), « non classé » for a verbatim received before tagging.
VERBATIM_THEMES = [
    ("Réponse personnalisée", "reponse_personnalisee"),
    ("Clarté de la réponse", "clarte"),
    ("Facilité pour nous contacter", "facilite_contact"),
    ("Compréhension de la demande", "comprehension"),
    ("Prise en charge de la demande", "prise_en_charge"),
    ("Délais de traitement", "delais"),
    ("Courtoisie", "courtoisie"),
    ("Autre", "autre"),
]
VERBATIM_TONES = [
    ("Irritant", "irritant"),
    ("Satisfaction", "satisfaction"),
    ("Suggestion", "suggestion"),
    ("Neutre", "neutre"),
    ("Non classé", "non_classe"),
]
WEEK_START = "to_date('${week}-1', 'IYYY-\"W\"IW-ID')"
INDICATORS = [
    ("nps", "NPS (recommandation)", "none"),
    ("ces", "CES (part d'accord)", "percent"),
    ("fcr_declared", "Résolution 1er contact (déclarée)", "percent"),
    ("fcr_observed", "Résolution 1er contact (observée)", "percent"),
    ("satisfaction", "Satisfaction (8 à 10)", "percent"),
    ("response_rate", "Taux de réponse", "percent"),
]


def shown(expression: str) -> str:
    """A figure as a person reads it: rounded to one decimal, halves away from zero, on its
    decimal writing (numeric round(), as contracts.figures.round_half_away) before Grafana,
    whose JavaScript rounding works on the binary float (2.675 -> 2.67)."""
    return f"round(({expression})::numeric, 1)"


SHOWN_VALUE_NOTE = (
    " Une valeur hors de son propre intervalle (très petit effectif) est montrée au centre de "
    "l'intervalle, avec une note ; le taux de réponse est celui des invitations de la semaine "
    "(réponses à ces invitations), « provisoire » tant que leurs liens sont ouverts."
)


def indicator_stat(indicator: str, title: str, unit: str) -> Panel:
    # shown_value: never a figure outside its own interval (issue #18); note: why, and
    # « provisoire » while the week's links are open.
    sql = f"""SELECT {shown("shown_value")} AS "Semaine", change_text AS "Évolution",
        sample_size AS "n", {shown("low")} AS "IC 95 % bas", {shown("high")} AS "IC 95 % haut",
        note AS "Note"
        FROM scoring.reporting_weekly_changes WHERE {SITE_WEEK} AND indicator = '{indicator}'"""
    return stat(
        title,
        sql,
        unit=unit,
        description="Valeur, évolution sur la semaine précédente (« stable » quand l'écart "
        "reste dans la marge d'incertitude à 95 %), effectif n et intervalle de confiance à 95 %."
        + SHOWN_VALUE_NOTE,
    )


def site_board() -> dict[str, Any]:
    panels = [indicator_stat(*spec) for spec in INDICATORS]
    panels += [
        table(
            "Indicateurs de la semaine",
            f"""
            SELECT label AS "Indicateur", {shown("shown_value")} AS "Valeur", sample_size AS "n",
                {shown("low")} AS "IC 95 % bas", {shown("high")} AS "IC 95 % haut",
                note AS "Note",
                {shown("previous_value")} AS "Semaine précédente", change_text AS "Évolution",
                {shown("CASE WHEN distinguishable THEN change END")} AS "Écart (points)"
            FROM scoring.reporting_weekly_changes WHERE {SITE_WEEK} ORDER BY indicator""",
            w=24,
            description="L'écart n'est chiffré que s'il sort de la marge d'incertitude à 95 % "
            "(intervalle de la différence : Newcombe pour les parts, Wald ajusté pour le NPS)."
            + SHOWN_VALUE_NOTE,
        ),
        bar_chart(
            "Thèmes : points forts et axes de progrès",
            f"""
            SELECT label AS "Thème", {shown("mean")} AS "Moyenne sur 10", sample_size AS "n"
            FROM scoring.reporting_weekly_themes WHERE {SITE_WEEK} ORDER BY mean DESC""",
            unit="none",
            description="Masqué sous 5 réponses (seuil d'anonymat).",
        ),
        table(
            "Par canal",
            f"""
            SELECT key AS "Canal", responses AS "Réponses",
                {shown("satisfaction")} AS "Satisfaction %", {shown("nps")} AS "NPS"
            FROM scoring.reporting_weekly_breakdown
            WHERE {SITE_WEEK} AND dimension = 'channel' ORDER BY responses DESC""",
            w=6,
            description="Aucune ligne sous 5 réponses (seuil d'anonymat).",
        ),
        table(
            "Par motif",
            f"""
            SELECT key AS "Motif", responses AS "Réponses",
                {shown("satisfaction")} AS "Satisfaction %", {shown("nps")} AS "NPS"
            FROM scoring.reporting_weekly_breakdown
            WHERE {SITE_WEEK} AND dimension = 'motif' ORDER BY responses DESC""",
            w=6,
            description="Aucune ligne sous 5 réponses (seuil d'anonymat).",
        ),
        table(
            "Principaux irritants",
            f"""
            SELECT label AS "Thème", irritants AS "Nombre",
                {shown("previous_mean")} AS "Moyenne des 4 semaines précédentes",
                trend_text AS "Tendance"
            FROM scoring.reporting_weekly_irritants WHERE {SITE_WEEK} ORDER BY rank""",
            w=12,
            description="Thèmes des verbatims au ton irritant de la semaine (étiquetés à "
            "l'arrivée, mots déclencheurs dans le panneau des verbatims), avec la tendance de "
            "leur part des réponses par rapport aux quatre semaines précédentes : « stable » "
            "quand l'écart reste dans la marge d'incertitude à 95 % (Newcombe). Masqué sous 5 "
            "réponses (seuil d'anonymat).",
        ),
        table(
            "Verbatims de la semaine",
            f"""
            SELECT answered_at AS "Reçu le", channel AS "Canal", motif AS "Motif",
                satisfaction_globale AS "Satisfaction", recommandation AS "Recommandation",
                effort AS "Effort", verbatim AS "Verbatim", themes AS "Thèmes", tone AS "Ton",
                trigger_words AS "Mots déclencheurs"
            FROM scoring.reporting_verbatims
            WHERE {SITE_WEEK}
                AND strpos(lower(verbatim), lower(${{verbatim_filter:sqlstring}})) > 0
                AND (${{verbatim_theme:sqlstring}} = 'tous'
                     OR ${{verbatim_theme:sqlstring}} = ANY (theme_codes))
                AND (${{verbatim_tone:sqlstring}} = 'tous'
                     OR tone_code = ${{verbatim_tone:sqlstring}})
            ORDER BY answered_at DESC""",
            w=24,
            h=10,
            description="Texte libre des usagers (expurgé à la réception), pour l'équipe : "
            "jamais publié. Thèmes et ton étiquetés à l'arrivée avec les mots qui les ont "
            "déclenchés ; « non classé » : reçu avant l'étiquetage. Filtrez avec les variables "
            "« Filtre verbatims », « Thème » et « Ton » ou les en-têtes de colonnes.",
        ),
        stat(
            "Rappels : détracteurs de la semaine",
            f"""
            SELECT coalesce(sum(raised), 0) AS "Alertes", coalesce(sum(handled), 0) AS "Traitées",
                coalesce(sum(handled_within_48h), 0) AS "Sous 48 h",
                coalesce(sum(handled_within_7d), 0) AS "Sous 7 jours",
                coalesce(sum(open), 0) AS "À rappeler"
            FROM scoring.reporting_weekly_callbacks WHERE {SITE_WEEK}""",
            unit="none",
            description="Alertes levées dans la semaine ; traitées = un rappel signalé par le "
            "CRM (crm.callback.completed.v1), sous 48 h et sous 7 jours après l'alerte.",
        ),
        table(
            "Issues des rappels de la semaine",
            f"""
            SELECT outcome_label AS "Issue", count(*) AS "Alertes"
            FROM scoring.reporting_alert_outcomes WHERE {SITE_WEEK} AND handled
            GROUP BY 1 ORDER BY 2 DESC""",
            w=6,
            description="Rappelé et résolu, rappelé sans solution, injoignable, refus : le "
            "premier rappel signalé de chaque alerte.",
        ),
        table(
            "Détracteurs à rappeler",
            """
            SELECT a.raised_at AS "Reçue le", o.open_age_days AS "En attente (jours)",
                a.contact_id AS "Contact (CRM)", a.reasons AS "Motifs",
                a.satisfaction_globale AS "Satisfaction", a.recommandation AS "Recommandation"
            FROM scoring.reporting_alerts a
            JOIN scoring.reporting_alert_outcomes o USING (alert_id)
            WHERE a.site_id = '${site}' AND NOT a.handled
            ORDER BY a.raised_at""",
            w=14,
            description="Toutes les alertes ouvertes, quelle que soit la semaine, avec leur âge.",
        ),
        table(
            "Invitations de la semaine",
            f"""
            SELECT survey_channel AS "Canal d'envoi", status AS "Statut",
                sum(invitations) AS "Invitations"
            FROM survey_dispatch.reporting_weekly_invitations WHERE {SITE_WEEK}
            GROUP BY 1, 2 ORDER BY 1, 2""",
            w=6,
        ),
        table(
            "Par équipe",
            f"""
            SELECT team AS "Équipe", responses AS "Réponses",
                {shown("satisfaction_pct")} AS "Satisfaction %", {shown("nps")} AS "NPS"
            FROM scoring.reporting_team_results
            WHERE {SITE_WEEK} ORDER BY responses DESC, team""",
            w=12,
            description="Résultats par équipe (champ team du contact), jamais individuels. "
            "Aucune équipe sous 5 réponses (seuil d'anonymat).",
        ),
        table(
            "Par canal d'enquête",
            f"""
            SELECT survey_channel AS "Canal d'enquête", invitations AS "Invitations",
                responses AS "Réponses", {shown("response_rate_pct")} AS "Taux de réponse %",
                {shown("rate_before_reminder_pct")} AS "Avant relance %",
                {shown("reminded_answered_pct")} AS "Relancés ayant répondu %",
                {shown("answers_after_reminder_pct")} AS "Réponses après relance %"
            FROM scoring.reporting_survey_channels
            WHERE {SITE_WEEK} ORDER BY survey_channel""",
            w=12,
            description="Invitations envoyées dans la semaine (e-mail, SMS) et leurs réponses ; "
            "« après relance » : réponse postérieure à la relance, non un effet causal. Taux "
            "masqués sous 5 réponses (seuil d'anonymat).",
        ),
    ]
    variables = [
        sql_variable(
            "network", "Réseau", "SELECT DISTINCT network FROM scoring.reporting_sites ORDER BY 1"
        ),
        sql_variable(
            "site",
            "Site",
            """SELECT site_id AS __value, site_name AS __text
                     FROM scoring.reporting_sites WHERE network = '${network}' ORDER BY 2""",
        ),
        sql_variable(
            "week",
            "Semaine",
            """SELECT DISTINCT week FROM scoring.reporting_weekly_site
                     WHERE site_id = '${site}' ORDER BY 1 DESC""",
        ),
        text_variable("verbatim_filter", "Filtre verbatims"),
        labelled_variable("verbatim_theme", "Thème", [("Tous", "tous"), *VERBATIM_THEMES]),
        labelled_variable("verbatim_tone", "Ton", [("Tous", "tous"), *VERBATIM_TONES]),
    ]
    return dashboard(
        "enquetes-site-weekly", "Enquêtes à chaud — revue hebdomadaire du site", panels, variables
    )


# --------------------------------------------------------------------------- network board

NETWORK_INDICATORS = ["satisfaction", "nps", "ces", "fcr_declared", "fcr_observed", "response_rate"]
DEFAULT_PUBLISHED = ("satisfaction", "nps", "fcr_declared", "ces")  # publication's default choice


def network_board() -> dict[str, Any]:
    network_week = "network = '${network}' AND week = '${week}' AND indicator = '${indicator}'"
    defaults = ", ".join(f"'{indicator}'" for indicator in DEFAULT_PUBLISHED)
    panels = [
        table(
            "Sites classés, avec leurs intervalles",
            f"""
            WITH sites AS (SELECT * FROM scoring.reporting_weekly_site WHERE {network_week}
                           AND sample_size > 0),
                 network AS (SELECT sum(value * sample_size) / nullif(sum(sample_size), 0) AS value
                             FROM sites)
            SELECT s.site_name AS "Site", {shown("s.shown_value")} AS "Valeur",
                s.sample_size AS "n",
                {shown("s.low")} AS "IC 95 % bas", {shown("s.high")} AS "IC 95 % haut",
                CASE WHEN s.adjusted THEN 'centre de l''intervalle : trop peu de réponses'
                     WHEN s.provisional THEN 'provisoire' END AS "Note",
                {shown("n.value")} AS "Réseau",
                CASE WHEN s.low > n.value THEN 'au-dessus du réseau'
                     WHEN s.high < n.value THEN 'en dessous du réseau'
                     ELSE 'non distinguable du réseau' END AS "Comparaison"
            FROM sites s CROSS JOIN network n ORDER BY s.value DESC""",
            w=16,
            h=10,
            description="Un site n'est « meilleur » que si son intervalle de confiance est "
            "entièrement au-dessus de la valeur du réseau.",
        ),
        stat(
            "Sites qui publient",
            f"""
            WITH per_site AS (
                SELECT site_id, bool_or(value IS NOT NULL AND sample_size >= ${{public_floor}}
                    AND coalesce(chosen, indicator IN ({defaults}))) AS publishes
                FROM publication.reporting_site_figures
                WHERE network = '${{network}}' AND period = '${{public_period}}' GROUP BY site_id)
            SELECT 100.0 * count(*) FILTER (WHERE publishes) / nullif(count(*), 0) AS "Part",
                count(*) AS "n"
            FROM per_site""",
            unit="percent",
            description="Part des sites affichant au moins un indicateur au public "
            "(effectif au-dessus du seuil de publication).",
        ),
        sql_series(
            "Tendance sur 13 semaines, par site",
            f"""
            SELECT week_start::timestamp AS time, site_name AS metric, value
            FROM scoring.reporting_weekly_site
            WHERE network = '${{network}}' AND indicator = '${{indicator}}' AND sample_size > 0
              AND week_start > {WEEK_START} - 91 AND week_start <= {WEEK_START}
            ORDER BY 1""",
            unit="none",
            w=24,
        ),
        sql_series(
            "Tendance sur 13 semaines, réseau",
            f"""
            SELECT week_start::timestamp AS time,
                sum(value * sample_size) / nullif(sum(sample_size), 0) AS "Réseau"
            FROM scoring.reporting_weekly_site
            WHERE network = '${{network}}' AND indicator = '${{indicator}}' AND sample_size > 0
              AND week_start > {WEEK_START} - 91 AND week_start <= {WEEK_START}
            GROUP BY 1 ORDER BY 1""",
            unit="none",
            w=24,
        ),
    ]
    variables = [
        sql_variable(
            "network", "Réseau", "SELECT DISTINCT network FROM scoring.reporting_sites ORDER BY 1"
        ),
        sql_variable(
            "week",
            "Semaine",
            """SELECT DISTINCT week FROM scoring.reporting_weekly_site
                     WHERE network = '${network}' ORDER BY 1 DESC""",
        ),
        custom_variable("indicator", "Indicateur", NETWORK_INDICATORS),
        constant("public_floor", "30"),
        constant("public_period", "rolling_90d"),
    ]
    return dashboard("enquetes-network", "Enquêtes à chaud — réseau", panels, variables)


# --------------------------------------------------------------------------- operations board

RATE = "$__rate_interval"


def operations_board() -> dict[str, Any]:
    panels = [
        prom_series(
            "Débit des consommateurs (événements/s)",
            [
                (f"sum by (job, topic) (rate(consumer_events_total[{RATE}]))", "{{job}} {{topic}}"),
            ],
            unit="ops",
        ),
        prom_series(
            "Retard des consommateurs (messages)",
            [
                ("sum by (job, topic) (consumer_lag_records)", "{{job}} {{topic}}"),
            ],
            unit="none",
        ),
        prom_series(
            "Messages en DLQ (par heure)",
            [
                (
                    "sum by (job, topic, reason) (increase(consumer_dlq_events_total[1h]))",
                    "{{job}} {{topic}} {{reason}}",
                ),
            ],
            unit="none",
            description="Vide tant que rien n'est rejeté.",
        ),
        prom_series(
            "Envois par canal et résultat",
            [
                (
                    f"sum by (channel, result) (rate(dispatch_sends_total[{RATE}]))",
                    "{{channel}} {{result}}",
                ),
                (
                    "sum by (channel) (rate(dispatch_sends_total"
                    f'{{result=~"failed|retry"}}[{RATE}]))'
                    f" / sum by (channel) (rate(dispatch_sends_total[{RATE}]))",
                    "échecs {{channel}}",
                ),
            ],
            unit="ops",
            description="Fournisseurs : SMTP pour le courriel, API SMS pour le SMS.",
        ),
        prom_series(
            "Âge du plus ancien événement de l'outbox",
            [
                ("max by (job) (outbox_oldest_event_age_seconds)", "{{job}}"),
            ],
            unit="s",
        ),
        prom_series(
            "Outbox : relais et échecs",
            [
                (
                    f"sum by (job, topic) (rate(outbox_events_relayed_total[{RATE}]))",
                    "{{job}} {{topic}}",
                ),
                (f"sum by (job) (rate(outbox_relay_failures_total[{RATE}]))", "échecs {{job}}"),
            ],
            unit="ops",
        ),
        prom_series(
            "Contact clos → invitation envoyée (p50, p95)",
            [
                (
                    "histogram_quantile(0.5, sum by (le, channel) "
                    f"(rate(dispatch_contact_closed_to_sent_seconds_bucket[{RATE}])))",
                    "p50 {{channel}}",
                ),
                (
                    "histogram_quantile(0.95, sum by (le, channel) "
                    f"(rate(dispatch_contact_closed_to_sent_seconds_bucket[{RATE}])))",
                    "p95 {{channel}}",
                ),
            ],
            unit="s",
        ),
        prom_series(
            "Réponse → indicateurs publiés (p50, p95)",
            [
                (
                    "histogram_quantile(0.5, sum by (le) "
                    f"(rate(scoring_response_to_indicators_seconds_bucket[{RATE}])))",
                    "p50",
                ),
                (
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(scoring_response_to_indicators_seconds_bucket[{RATE}])))",
                    "p95",
                ),
                (
                    "histogram_quantile(0.95, sum by (le, job, topic) "
                    f"(rate(consumer_batch_duration_seconds_bucket[{RATE}])))",
                    "traitement {{job}} {{topic}}",
                ),
            ],
            unit="s",
            description="Du dépôt d'une réponse à l'événement d'indicateurs qui l'inclut, puis "
            "le traitement par étape (scoring, publication).",
        ),
        prom_series(
            "Erreurs des fournisseurs d'envoi",
            [
                (
                    f"sum by (channel, kind) (increase(dispatch_provider_errors_total[{RATE}]))",
                    "{{channel}} {{kind}}",
                ),
            ],
            unit="none",
            description="SMTP pour le courriel, API SMS pour le SMS. Vide sans erreur.",
        ),
        prom_series(
            "Invitations programmées",
            [
                ("sum(dispatch_scheduled_invitations)", "programmées"),
            ],
            unit="none",
        ),
        prom_series(
            "Décisions de sollicitation",
            [
                (
                    f"sum by (outcome, reason) (rate(dispatch_decisions_total[{RATE}]))",
                    "{{outcome}} {{reason}}",
                ),
            ],
            unit="ops",
        ),
        prom_series(
            "HTTP : requêtes et taux d'erreurs 5xx",
            [
                (f"sum by (job) (rate(http_requests_total[{RATE}]))", "{{job}}"),
                (
                    f'sum by (job) (rate(http_requests_total{{status=~"5.."}}[{RATE}]))'
                    f" / sum by (job) (rate(http_requests_total[{RATE}]))",
                    "erreurs {{job}}",
                ),
            ],
            unit="reqps",
        ),
        prom_series(
            "HTTP : latence p95",
            [
                (
                    "histogram_quantile(0.95, sum by (le, job) "
                    f"(rate(http_request_duration_seconds_bucket[{RATE}])))",
                    "{{job}}",
                ),
            ],
            unit="s",
        ),
        prom_series(
            "Santé des processus",
            [
                ("up", "up {{job}}"),
                (f"sum by (job) (rate(process_cpu_seconds_total[{RATE}]))", "CPU {{job}}"),
                (
                    "sum by (job, task) (increase(background_task_restarts_total[1h]))",
                    "redémarrages {{job}} {{task}}",
                ),
            ],
            unit="none",
        ),
        prom_series(
            "Mémoire résidente",
            [
                ("sum by (job) (process_resident_memory_bytes)", "{{job}}"),
            ],
            unit="bytes",
        ),
    ]
    return dashboard(
        "enquetes-operations",
        "Enquêtes à chaud — exploitation",
        panels,
        [],
        time_from="now-3h",
        refresh="30s",
    )


DASHBOARDS = {
    "site-weekly.json": site_board,
    "network.json": network_board,
    "operations.json": operations_board,
}


def rendered() -> dict[str, str]:
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is stale")
    args = parser.parse_args(argv)
    wanted = rendered()
    stale = [
        name
        for name, text in wanted.items()
        if not (DASHBOARD_DIR / name).is_file()
        or (DASHBOARD_DIR / name).read_text(encoding="utf-8") != text
    ]
    extra = sorted({p.name for p in DASHBOARD_DIR.glob("*.json")} - wanted.keys())
    if args.check:
        if stale or extra:
            print(f"stale dashboards {stale + extra}: run deploy/grafana/build.py", file=sys.stderr)
            return 1
        return 0
    DASHBOARD_DIR.mkdir(exist_ok=True)
    for name in extra:
        (DASHBOARD_DIR / name).unlink()
    for name in stale:
        (DASHBOARD_DIR / name).write_text(wanted[name], encoding="utf-8")
    print(f"{len(wanted)} dashboard(s) in {DASHBOARD_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
