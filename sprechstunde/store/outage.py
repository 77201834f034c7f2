"""Telling "the store cannot be used right now" apart from a bug, for every adapter, so that the web layer
can answer 503 and the sockets a `store_unavailable` error instead of a 500 or an `internal` error."""

from __future__ import annotations

import sqlite3

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sprechstunde.store.redis import StoreUnavailable

STORE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,  # also BusyLoadingError: Redis is still reading its AOF after a restart
    RedisTimeoutError,
    StoreUnavailable,
    sqlite3.OperationalError,  # locked beyond the busy timeout, disk I/O error, read-only file system
)
_SQLITE_OUTAGE = ("locked", "busy", "disk i/o", "readonly", "read-only", "unable to open", "full")


def store_outage(exc: BaseException) -> bool:
    """Whether the error means "the store cannot be used right now" rather than a bug: every Redis
    connection/timeout error, but of SQLite's OperationalError only locks, I/O and full disks (a missing
    table or column stays a 500 with a stack trace in the log)."""
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return any(word in message for word in _SQLITE_OUTAGE)
    return isinstance(exc, STORE_ERRORS)
