"""aiortc's clock (`aiortc.clock`) as the forwarding path reads it, without building datetime objects.

aiortc stamps every received packet with `clock.current_ms()`/`current_datetime()` and every sent one
with `current_ntp_time()`; each builds timezone-aware datetimes, a measurable share of the forwarding
CPU. The fork's per-packet code calls these instead; aiortc's module is left alone (its own code, in
RTCP reports and statistics, keeps its own clock).
"""

from __future__ import annotations

import datetime
import time

NTP_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
DATETIME_STEP = 0.01  # s: how stale `_current_datetime` may be

MIRRORS = {
    "aiortc.clock:current_ms": "the same value, from time.time() (`_current_ms`)",
    "aiortc.clock:current_ntp_time": "the same value, from time.time() (`_current_ntp_time`)",
    "aiortc.clock:current_datetime": "the same value to within DATETIME_STEP (`_current_datetime`)",
}


def _current_ms() -> int:
    """aiortc's `clock.current_ms` (milliseconds since 1900) without building datetime objects."""
    return int((time.time() + NTP_OFFSET) * 1000)


def _current_ntp_time() -> int:
    """aiortc's `clock.current_ntp_time` (64-bit NTP timestamp) without building datetime objects."""
    now = time.time()
    seconds = int(now)
    return ((seconds + NTP_OFFSET) << 32) | int((now - seconds) * 4_294_967_296)


class _CoarseDatetime:
    """aiortc's `clock.current_datetime`, to within 10 ms: the receiver stamps every packet with it (the
    source's last-seen time, for `getSynchronizationSources` and its 10 s cut-off), and a timezone-aware
    datetime per packet was a measurable share of the forwarding CPU."""

    def __init__(self) -> None:
        self._at = 0.0
        self._value = datetime.datetime.now(datetime.UTC)

    def __call__(self) -> datetime.datetime:
        now = time.time()
        if now - self._at >= DATETIME_STEP or now < self._at:
            self._at = now
            self._value = datetime.datetime.fromtimestamp(now, datetime.UTC)
        return self._value


_current_datetime = _CoarseDatetime()
