"""Static front-end assets (DSFR from npm), served from our own origin: no CDN, no tracking."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

DSFR_RELATIVE = Path("node_modules/@gouvfr/dsfr/dist")


def dsfr_dist_dir() -> Path:
    """`DSFR_DIST_DIR`, else `node_modules/@gouvfr/dsfr/dist` in the repository or the image."""
    configured = os.environ.get("DSFR_DIST_DIR")
    if configured:
        return Path(configured)
    for base in (Path.cwd(), *Path(__file__).resolve().parents):
        candidate = base / DSFR_RELATIVE
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("DSFR assets missing: run `make setup` (npm ci) first")


class CachedStaticFiles(StaticFiles):
    """Assets are versioned by the npm lock file: let browsers keep them for a day."""

    async def get_response(self, path: str, scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def mount_dsfr(app: FastAPI) -> None:
    app.mount("/static/dsfr", CachedStaticFiles(directory=dsfr_dist_dir()), name="dsfr")
