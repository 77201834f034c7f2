"""The scheduling domain's error: a DomainError (stable `code`, HTTP `status`, machine-readable `detail`).

Raised before anything is written (or after a failed attempt has been undone), so a request that fails
changes no booking. Its own class because the booking pages catch exactly it to show the form again.
"""

from __future__ import annotations

from sprechstunde.errors import DomainError


class BookingError(DomainError):
    """A booking request that cannot be honoured."""
