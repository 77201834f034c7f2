"""The retention sweep: personal data is deleted when its time is up, not merely hidden (issue 15,
finding 7; the table in SECURITY.md says what goes when).

The app hands in the domains' erase jobs (e.g. tickets' personal fields N days after closing); every run
does those and then `Store.purge_expired`, which deletes expired records for good — last, so whatever the
jobs just deleted is also flushed out of SQLite's WAL. It runs at start-up and every `interval` seconds,
on one node at a time (store lease); a failing job is logged and the others still run.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping

from sprechstunde.store.lease import lease
from sprechstunde.store.port import Store
from sprechstunde.tasks import Periodic

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[int]]
LEASE_NAME = "retention-sweep"
LEASE_SECONDS = 300.0  # longer than one run


class RetentionSweep:
    def __init__(self, store: Store, jobs: Mapping[str, Job] | None = None) -> None:
        self._store = store
        self.jobs: dict[str, Job] = dict(jobs or {})
        self._holder = secrets.token_hex(6)
        self._rounds: Periodic | None = None

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
        if interval and self._rounds is None:
            self._rounds = Periodic("retention sweep", self.run_once, interval)
            self._rounds.start(run_first=False)

    async def close(self) -> None:
        if self._rounds is not None:
            await self._rounds.close()
            self._rounds = None
