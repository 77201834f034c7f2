"""The domain error of the waiting room, queue, routing and tickets.

A subclass of RoomError, so the web layer's existing handling (stable `code`, HTTP `status`, JSON
`{"error": {"code", "message"}}`) applies unchanged. `detail` carries machine-readable extras such as
the next opening time.
"""

from __future__ import annotations

from typing import Any

from sprechstunde.rooms.service import RoomError


class QueueError(RoomError):
    """Raised before anything is written: a request that fails validation changes nothing."""

    def __init__(self, code: str, message: str, status: int = 400, **detail: Any) -> None:
        super().__init__(code, message, status)
        self.detail = detail
