"""The one error type every layer raises when a request cannot be honoured.

A domain (rooms, queue, scheduling, documents, staff, signaling) raises `DomainError` — or a subclass that
only names its area — *before* it writes anything, so a refused request changes nothing. The web layer
renders it in one place (`sprechstunde.web.core.errors`): `{"error": {"code", "message", **detail}}` with
`status` under /api/, the localised error page elsewhere, a signaling `error` message on a socket. `code`
is stable (clients and tests match on it); `message` is English prose for developers and logs; `detail`
carries machine-readable extras (the next opening time, the office to leave a question at, …).

This module imports nothing of the project, so every package may import it.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the domain refuses: stable `code`, human `message`, HTTP `status`, extra `detail`."""

    def __init__(self, code: str, message: str, status: int = 400, **detail: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON error object: `{"code", "message", **detail}` (detail never overrides the two)."""
        return {**self.detail, "code": self.code, "message": self.message}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, status={self.status})"
