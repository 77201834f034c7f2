"""Background tasks a component starts and must not outlive: failures are logged, shutdown ends them.

Three shapes, one place: `stop` ends one long-running task; `BackgroundTasks` holds short tasks spawned
per event (a closed socket's cleanup); `Periodic` runs one job now and again every `interval` seconds
(document retention, the retention sweep, the appointment mail job), logging a failed round and trying
again at the next, and can be woken early. Imports nothing of the project, so every package may use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def stop(task: asyncio.Task | None) -> None:
    """Cancel a component's long-running task and wait until it has ended (whatever it ended with)."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class BackgroundTasks:
    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s task failed", self._owner, exc_info=task.exception())

    async def wait(self, timeout: float) -> None:
        """Let running work (a closed socket's cleanup) finish, for at most `timeout` seconds."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Periodic:
    """`job` now (on `start`, when `run_first`), then every `interval` seconds until `close`; `wake` runs
    it early. A round that raises is logged with `what` and the next round runs as planned."""

    def __init__(self, what: str, job: Callable[[], Awaitable[Any]], interval: float) -> None:
        self._what = what
        self._job = job
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self, run_first: bool = True) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(run_first))

    @property
    def running(self) -> bool:
        return self._task is not None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self, run_first: bool) -> None:
        if not run_first:
            await self._sleep()
        while True:
            try:
                await self._job()
            except Exception:
                log.exception("%s failed; trying again in %s s", self._what, self.interval)
            await self._sleep()

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.interval):  # unlike wait_for, no task per round
                await self._wake.wait()
        self._wake.clear()

    async def close(self) -> None:
        await stop(self._task)
        self._task = None
