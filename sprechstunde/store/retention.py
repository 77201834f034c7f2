"""The retention sweep: personal data is deleted when its time is up, not merely hidden (issue 15,
finding 7; the table in SECURITY.md says what goes when).

The app hands in the domains' erase jobs (e.g. tickets' personal fields N days after closing); every run
does those and then `Store.purge_expired`, which deletes expired records for good — last, so whatever the
jobs just deleted is also flushed out of SQLite's WAL. It runs at start-up and every `interval` seconds,
on one node at a time (store lease); a failing job is logged and the others still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping

from sprechstunde.store.lease import lease
from sprechstunde.store.port import Store

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[int]]
LEASE_NAME = "retention-sweep"
LEASE_SECONDS = 300.0  # longer than one run


class RetentionSweep:
    def __init__(self, store: Store, jobs: Mapping[str, Job] | None = None) -> None:
        self._store = store
        self.jobs: dict[str, Job] = dict(jobs or {})
        self._holder = secrets.token_hex(6)
        self._task: asyncio.Task | None = None

    async def run_once(self) -> dict[str, int]:
        """Run every job, then purge expired records; counts per job ("expired": records purged)."""
        counts: dict[str, int] = {}
        async with lease(self._store, LEASE_NAME, self._holder, LEASE_SECONDS) as held:
            if not held:
                return counts
            for name, job in self.jobs.items():
                try:
                    counts[name] = await job()
                except Exception:
                    log.exception("retention job %s failed; the others still run", name)
        # After the lease is given back, so that its own record is purged like any other.
        counts["expired"] = await self._store.purge_expired()
        if any(counts.values()):
            log.info("retention sweep: %s", counts)
        return counts

    async def start(self, interval: float | None) -> None:
        """Run once now, then every `interval` seconds (None or 0: only now)."""
        await self.run_once()
        if interval and self._task is None:
            self._task = asyncio.create_task(self._periodic(interval))

    async def _periodic(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.run_once()
            except Exception:
                log.exception("retention sweep failed; trying again in %s s", interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
