"""The one clock of the application.

Every service that needs "now" takes a clock — a callable returning wall-clock seconds since the epoch
(`Now`) — instead of calling `time.time()` itself. The app factory builds one `Clock` and hands the same
instance to every service (rooms, queue, tickets, consultations, scheduling, documents), so they all agree
on what time it is, and a test moves all of them at once with `clock.set(moment)` without touching the
system clock. Plain `time.time` and a test's `lambda: 100.0` are clocks too.

Durations that must not jump with the wall clock (timeouts, rate limits) use `monotonic` instead.

This module imports nothing of the project, so every package may import it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

Now = Callable[[], float]
"""What a service takes as its clock: wall-clock seconds since the epoch (`time.time` semantics)."""


class Clock:
    """Wall-clock time with an adjustable offset: production runs at offset 0, tests move every service
    to a known opening hour without touching the system clock."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset

    def now(self) -> float:
        """The wall-clock reading (the same as calling the clock)."""
        return time.time() + self.offset

    @staticmethod
    def monotonic() -> float:
        """Seconds of a clock that never jumps (nor moves with `set`): for timeouts and rates."""
        return time.monotonic()

    def set(self, moment: datetime) -> None:
        """From now on the clock reads `moment` (and runs on from there)."""
        self.offset = moment.timestamp() - time.time()
