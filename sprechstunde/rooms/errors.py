"""The domain error of the waiting room, queue, routing and tickets.

A RoomError, hence a DomainError (sprechstunde/errors.py): stable `code`, HTTP `status`, and `detail`
for machine-readable extras such as the next opening time. Its own class because the waiting-room socket
and the booking service catch exactly it.
"""

from __future__ import annotations

from sprechstunde.rooms.service import RoomError


class QueueError(RoomError):
    """Raised before anything is written: a request that fails validation changes nothing."""
