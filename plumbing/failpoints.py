"""Failpoints: let a test crash a process at an exact instant, to prove nothing is lost there.

`FAILPOINT=<name>` in a process's environment makes `hit(<name>)` end the process at once,
as a power cut would (no clean-up, no final commit). Unset in production, `hit` does nothing.
"""

from __future__ import annotations

import os

CRASH_EXIT_CODE = 86


def hit(name: str) -> None:
    if os.environ.get("FAILPOINT") == name:
        os._exit(CRASH_EXIT_CODE)
