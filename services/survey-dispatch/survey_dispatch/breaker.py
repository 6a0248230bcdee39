"""A circuit breaker per provider: stop calling a provider that is down, for a cool-down.

Closed: calls flow. After `failures` consecutive temporary failures it opens: nobody calls the
provider, the rows stay scheduled (no attempt is spent). After the cool-down it is half-open:
one small probe batch goes; a success closes it, a failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class CircuitState(Enum):
    CLOSED = 0.0
    HALF_OPEN = 0.5
    OPEN = 1.0


class CircuitBreaker:
    def __init__(
        self, *, failures: int, cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.threshold = failures
        self.cooldown = cooldown_seconds
        self.clock = clock
        self.consecutive_failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> CircuitState:
        if self.opened_at is None:
            return CircuitState.CLOSED
        if self.clock() - self.opened_at < self.cooldown:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        was_probing = self.state is CircuitState.HALF_OPEN
        if was_probing or self.consecutive_failures >= self.threshold:
            self.opened_at = self.clock()
