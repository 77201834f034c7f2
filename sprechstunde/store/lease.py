"""A named lease in the store: background jobs that several nodes run (document retention, booking mails)
run on one node at a time. The lease expires by itself, so a node that dies while holding it blocks the
job for at most `ttl` seconds; choose `ttl` longer than one run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sprechstunde.store.port import Store

LEASE_KIND = "lease"


@contextlib.asynccontextmanager
async def lease(store: Store, name: str, holder: str, ttl: float) -> AsyncIterator[bool]:
    """Yields True while this process holds `name` (and releases it afterwards), False when another
    process holds it — the caller then skips the job this time."""
    held = await store.create(LEASE_KIND, name, {"holder": holder}, ttl=ttl)
    try:
        yield held
    finally:
        if held:
            await store.delete(LEASE_KIND, name)
