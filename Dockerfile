# syntax=docker/dockerfile:1
#
# One image for the four services; the command picks the service and the step:
#   python -m survey_dispatch|survey_responses|scoring|publication serve|migrate
#
# Build (from the repository root):
#   docker build -t enquetes-a-chaud:$(git rev-parse --short HEAD) .
# Run one service locally (the root filesystem can be read-only; /tmp must be writable):
#   docker run --rm --read-only --tmpfs /tmp -p 8080:8080 \
#     -e DATABASE_URL=... -e KAFKA_BOOTSTRAP_SERVERS=... \
#     enquetes-a-chaud:<tag> python -m publication serve
#
# Base images are pinned to exact versions; for a reproducible release, pin them by digest too
# (`FROM python:3.11.14-slim-bookworm@sha256:...`). Checked by hadolint in deploy/tests/test_dockerfile.py.

# --- DSFR front-end assets (npm), built once and copied as static files -----------------------
FROM node:22.20.0-bookworm-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
# Source maps are two thirds of the DSFR's 88 MB and serve no user: leave them out.
RUN npm ci --ignore-scripts --no-audit --no-fund \
    && test -d node_modules/@gouvfr/dsfr/dist \
    && find node_modules/@gouvfr/dsfr/dist -name '*.map' -delete

# --- Python environment, built with uv from the committed lock file --------------------------
FROM python:3.11.14-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
# Then the code: the shared packages and the four services, installed (editable, so the
# repository layout is kept under /app) into the same venv, and compiled ahead of time.
COPY README.md ./
COPY contracts ./contracts
COPY plumbing ./plumbing
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
    && python -m compileall -q contracts plumbing services

# --- Runtime: no compiler, no package manager for the app, no uv, a non-root user ------------
FROM python:3.11.14-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="enquetes-a-chaud" \
      org.opencontainers.image.description="Hot satisfaction surveys for public services" \
      org.opencontainers.image.licenses="EUPL-1.2"
RUN groupadd --system --gid 10001 enquetes \
    && useradd --system --uid 10001 --gid enquetes --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin enquetes
ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DSFR_DIST_DIR=/app/node_modules/@gouvfr/dsfr/dist \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
WORKDIR /app
# Everything stays owned by root: the service user can read the code but never change it.
COPY --from=build /app /app
COPY --from=assets /build/node_modules/@gouvfr/dsfr/dist /app/node_modules/@gouvfr/dsfr/dist
USER 10001:10001
EXPOSE 8080
CMD ["python", "-c", "raise SystemExit('usage: python -m survey_dispatch|survey_responses|scoring|publication serve|migrate')"]
