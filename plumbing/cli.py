"""The command line every service shares: `python -m <package> serve | migrate`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from plumbing import db, logs
from plumbing.settings import ServiceSettings


def run(
    *,
    service: str,
    schema: str,
    migrations_dir: Path,
    settings_factory: Callable[[], ServiceSettings],
    app_factory: Callable[[Any], Any],
    argv: list[str] | None = None,
    extra_commands: dict[str, Callable[[Any], None]] | None = None,
    proxy_headers: bool = True,
) -> None:
    """`proxy_headers=False`: uvicorn leaves the peer address alone (the service decides which
    proxies it trusts, e.g. responses' TRUSTED_PROXIES), instead of FORWARDED_ALLOW_IPS."""
    commands = {"serve", "migrate", *(extra_commands or {})}
    parser = argparse.ArgumentParser(prog=f"python -m {service.replace('-', '_')}")
    parser.add_argument("command", choices=sorted(commands))
    parser.add_argument("--migrate", action="store_true", help="serve: migrate first")
    args = parser.parse_args(argv)
    settings = settings_factory()
    logs.configure(service, settings.log_level)
    if args.command in {"migrate"} or args.migrate:
        asyncio.run(db.migrate(settings.database_url, schema=schema, migrations_dir=migrations_dir))
    if args.command == "serve":
        uvicorn.run(
            app_factory(settings),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            proxy_headers=proxy_headers,
        )
    elif extra_commands and args.command in extra_commands:
        extra_commands[args.command](settings)
