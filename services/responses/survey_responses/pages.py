"""Server-rendered French pages: the questionnaire, thanks, and every way a link can be closed."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from contracts.questionnaire import Questionnaire
from contracts.questionnaire import load as load_questionnaire
from survey_responses import domain

HERE = Path(__file__).parent
STATIC = HERE / "static"
CLOSED_STATUS = {
    domain.LinkState.UNKNOWN: 404,
    domain.LinkState.EXPIRED: 410,
    domain.LinkState.ANSWERED: 409,
}


def asset_version(name: str) -> str:
    """A content hash in the asset URL, so a day of browser caching never serves a stale file."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


def french_spacing(text: str) -> str:
    """A no-break space before « ? ! : ; » so a phone never wraps the mark alone on a line."""
    return re.sub(r" ([?!:;»])", "\u00a0\\1", text).replace("« ", "«\u00a0")


class Pages:
    def __init__(self, *, results_base_url: str, optout_base_url: str) -> None:
        self.results_base_url = results_base_url.rstrip("/")
        self.optout_base_url = optout_base_url.rstrip("/")
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=True,
            auto_reload=False,  # no stat() per request: templates change only with a deploy
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["nbsp"] = french_spacing
        # Bounded: a draft's free text makes its own entry, which soon ages out.
        self._steps_html = lru_cache(maxsize=256)(self._render_steps)
        self.env.globals["assets"] = {
            name: asset_version(name) for name in ("survey.css", "survey.js")
        }

    def render(self, name: str, status: int = 200, headers: dict[str, str] | None = None,
               **context: Any) -> HTMLResponse:  # fmt: skip
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=headers)

    def results_url(self, site_id: str) -> str:
        return f"{self.results_base_url}/display/{site_id}"

    def survey(
        self, *, questionnaire: Questionnaire, site_name: str | None, csrf: str,
        values: dict[str, Any], errors: dict[str, str], status: int = 200,
    ) -> HTMLResponse:  # fmt: skip
        steps_html = self._steps_html(
            questionnaire.version,
            tuple(sorted((key, str(value)) for key, value in values.items())),
            tuple(sorted(errors.items())),
        )
        return self.render(
            "survey.html", status, q=questionnaire, steps_html=steps_html, errors=errors,
            site_name=site_name, csrf=csrf, step_count=len(domain.steps(questionnaire)),
        )  # fmt: skip

    def _render_steps(
        self, version: str, values: tuple[tuple[str, str], ...],
        errors: tuple[tuple[str, str], ...],
    ) -> Markup:  # fmt: skip
        """The questions are ~90 % of the page and of its rendering time, and the same for every
        link with the same pre-filled answers: rendered once, then served from memory."""
        questionnaire = load_questionnaire(version)
        html = self.env.get_template("_steps.html").render(
            steps=domain.steps(questionnaire), values=dict(values), errors=dict(errors)
        )
        return Markup(html)

    def thanks(self, *, site_name: str | None, site_id: str, token: str) -> HTMLResponse:
        return self.render(
            "thanks.html", site_name=site_name, results_url=self.results_url(site_id),
            optout_url=f"{self.optout_base_url}/o/{token}",
        )  # fmt: skip

    def saved(self, *, site_name: str | None, token: str) -> HTMLResponse:
        return self.render("saved.html", site_name=site_name, survey_url=f"/s/{token}")

    def closed(self, state: domain.LinkState, *, site_name: str | None = None,
               site_id: str | None = None) -> HTMLResponse:  # fmt: skip
        # An unknown link shows nothing of any site: a guess must learn nothing.
        known = state is not domain.LinkState.UNKNOWN
        return self.render(
            "closed.html", CLOSED_STATUS[state], state=state.value,
            site_name=site_name if known else None,
            results_url=self.results_url(site_id) if known and site_id else None,
        )  # fmt: skip

    def error(self, status: int, title: str, message: str, *, retry_url: str | None = None,
              headers: dict[str, str] | None = None) -> HTMLResponse:  # fmt: skip
        return self.render(
            "error.html", status, headers=headers, title=title, message=message,
            retry_url=retry_url, site_name=None,
        )  # fmt: skip
