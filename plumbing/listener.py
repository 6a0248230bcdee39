"""A LISTEN connection that re-opens itself when PostgreSQL goes away and comes back.

A notification is only delivered to a session that is LISTENing when it is sent: a dead LISTEN
connection does not fail, it just goes quiet, and whatever it woke falls back to its slow poll.
`Listener` holds one dedicated connection, notices when it dies (asyncpg's termination callback,
and a light ping for a half-open socket), re-opens it with backoff and re-adds its channels.
While it is down, `problem()` says so (the runtime's `/readyz` reports it), and each time it is
listening again `on_listening` runs: notifications sent meanwhile were missed, so the owner
catches up (a wake-up, a rebuild) instead of waiting for its fallback poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

# asyncpg's notification callback: (connection, server pid, channel, payload).
NotifyCallback = Callable[[Any, int, str, str], None]

# What a lost or refused connection raises while we (re)connect or ping.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, and TimeoutError
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


class Listener:
    """LISTENs on `channels` from one dedicated connection, taken from a pool (held for as long
    as the listener runs) or opened from a DSN; re-opened with backoff whenever it dies."""

    def __init__(
        self,
        source: asyncpg.Pool | str,
        channels: Mapping[str, NotifyCallback],
        *,
        name: str,
        on_listening: Callable[[], None] | None = None,
        first_retry_seconds: float = 0.1,
        max_retry_seconds: float = 2.0,
        ping_seconds: float = 10.0,
    ) -> None:
        if not channels:
            raise ValueError("a listener needs at least one channel")
        self.source = source
        self.channels = dict(channels)
        self.name = name
        self.on_listening = on_listening
        self.first_retry_seconds = first_retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.ping_seconds = ping_seconds
        self.up = asyncio.Event()  # set while LISTENing on a live connection
        self.opened = 0  # times a connection was opened and LISTENing
        self.reconnects = 0  # of which, re-opened after a loss

    def problem(self) -> str | None:
        return None if self.up.is_set() else f"listener {self.name} down"

    async def run(self) -> None:
        """Listen until cancelled, re-opening the connection whenever it is lost."""
        delay = self.first_retry_seconds
        while True:
            opened = self.opened
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except CONNECTION_ERRORS as error:
                log.warning(
                    "listen connection lost, re-opening",
                    extra={"listener": self.name, "error_type": type(error).__name__,
                           "retry_in": delay},
                )  # fmt: skip
            except Exception:  # never die: whoever it wakes would fall back to its slow poll
                log.exception("listen connection failed, re-opening", extra={"listener": self.name})
            finally:
                self.up.clear()
            if self.opened != opened:
                delay = self.first_retry_seconds  # it worked for a while: start afresh
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_seconds)

    async def _listen_once(self) -> None:
        """One connection's life: open, LISTEN, wait until it dies (raises), close."""
        connection, release = await self._open()
        lost = asyncio.Event()

        def on_lost(_: object) -> None:
            lost.set()

        try:
            connection.add_termination_listener(on_lost)
            for channel, callback in self.channels.items():
                await connection.add_listener(channel, callback)
            self.up.set()
            self.opened += 1
            if self.opened > 1:
                self.reconnects += 1
                log.info("listen connection re-opened", extra={"listener": self.name})
            if self.on_listening is not None:
                try:
                    self.on_listening()
                except Exception:
                    log.exception("catch-up after listening failed", extra={"listener": self.name})
            while not connection.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.ping_seconds)
                if lost.is_set() or connection.is_closed():
                    break
                # A half-open socket (host gone, no RST) is only noticed by talking on it.
                await asyncio.wait_for(connection.fetchval("SELECT 1"), self.ping_seconds)
            raise ConnectionResetError("listen connection closed")
        finally:
            self.up.clear()
            with contextlib.suppress(Exception):
                connection.remove_termination_listener(on_lost)
            if not connection.is_closed():
                for channel, callback in self.channels.items():
                    with contextlib.suppress(Exception):
                        await connection.remove_listener(channel, callback)
            with contextlib.suppress(Exception):
                await release()

    async def _open(self) -> tuple[Any, Callable[[], Awaitable[None]]]:
        if isinstance(self.source, str):
            connection = await asyncpg.connect(self.source)

            async def close() -> None:
                await connection.close(timeout=2)

            return connection, close
        pool = self.source
        pooled = await pool.acquire()

        async def release() -> None:
            await pool.release(pooled, timeout=2)

        return pooled, release
