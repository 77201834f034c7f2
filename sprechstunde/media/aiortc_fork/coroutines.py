"""Running aiortc's packet-handling coroutines in the caller (`run_now`), as the fork's per-packet paths do.

aiortc handles each packet, and sends each RTCP feedback, in a coroutine that almost never waits; a task
per packet would cost a task switch each. Nothing of aiortc is replaced or mirrored here.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator
from typing import Any

log = logging.getLogger(__name__)

MIRRORS: dict[str, str] = {}


@types.coroutine
def _carry_on(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Resume a coroutine that `run_now` started and that suspended on `waiting_on`."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # noqa: BLE001 — cancellation and errors go into the coroutine
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(value)
            except StopIteration as stop:
                return stop.value


async def _finish(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
    try:
        await _carry_on(coro, waiting_on)
    except ConnectionError:
        pass  # the connection is closing; aiortc's own loop would stop here too
    except Exception:
        log.exception("handling an incoming packet failed")


def run_now(coro: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine in the caller up to its first real suspension (aiortc's packet handlers are
    coroutines that almost never wait); only if it does wait, a task carries on with it."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return
    except ConnectionError:
        return
    except Exception:
        log.exception("handling an incoming packet failed")
        return
    asyncio.ensure_future(_finish(coro, waiting_on))
