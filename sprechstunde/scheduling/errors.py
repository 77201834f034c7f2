"""The scheduling domain's error: a stable `code`, an HTTP `status` and machine-readable `detail`.

Raised before anything is written (or after a failed attempt has been undone), so a request that fails
changes no booking.
"""

from __future__ import annotations

from typing import Any


class BookingError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, **detail: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail
