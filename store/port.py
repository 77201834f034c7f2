"""The storage port every domain package talks to.

Records are small JSON objects addressed by (kind, key). The port is deliberately narrow so that the
embedded adapter (SQLite) and the Redis adapter can honour the same contract, including atomic creation
and expiry.
"""

from __future__ import annotations

from typing import Any, Protocol

Record = dict[str, Any]


class Store(Protocol):
    async def get(self, kind: str, key: str) -> Record | None:
        """The record, or None when it is absent or expired."""

    async def put(self, kind: str, key: str, value: Record, *, ttl: float | None = None) -> None:
        """Create or replace; `ttl` seconds until the record expires (None: never)."""

    async def create(self, kind: str, key: str, value: Record, *, ttl: float | None = None) -> bool:
        """Atomically create; False when a live record with that key already exists."""

    async def delete(self, kind: str, key: str) -> bool:
        """True when a live record was removed."""

    async def scan(self, kind: str) -> list[tuple[str, Record]]:
        """All live records of a kind, ordered by key."""

    async def close(self) -> None:
        """Release connections; further calls are errors."""
