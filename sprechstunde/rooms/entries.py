"""What the queue stores and answers: a citizen's place in line (`QueueEntry`), an appointment attended
through the waiting room, and the results of joining, claiming and finishing. Plain frozen dataclasses;
`QueueService` (rooms/queue.py) makes and changes them, `from_record` loads them from the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sprechstunde.rooms.routing import APPOINTMENT, WALK_IN, Availability, lane
from sprechstunde.rooms.service import Room
from sprechstunde.rooms.tickets import Ticket


@dataclass(frozen=True)
class Appointment:
    """A booked slot (from `scheduling`) that the citizen attends through the waiting room."""

    starts_at: datetime
    booking_id: str | None = None
    # scheduling: the advisor the appointment was booked with; they see and claim it first
    advisor: str | None = None


@dataclass(frozen=True)
class QueueEntry:
    """One citizen's place in line and what the advisor should know before admitting them.

    `state`: waiting → called (claimed, room_id set) → done | abandoned.
    """

    entry_id: str
    office: str
    language: str
    topic: str
    enqueued_at: float
    note: str | None = None
    transcript: list[dict[str, str]] = field(default_factory=list)
    appointment_at: float | None = None
    booking_id: str | None = None
    state: str = "waiting"
    claimed_by: str | None = None
    claimed_at: float | None = None
    room_id: str | None = None
    transferred_from: list[str] = field(default_factory=list)
    outcome: str | None = None
    advisor: str | None = None  # scheduling: the booked advisor (see Appointment)
    ticket: str | None = None
    # The note for colleagues written when handing the citizen over to another office's queue. Staff
    # only: it never replaces `note` (the citizen's own) and no citizen-facing view shows it. Records
    # stored before it existed load with None.
    handover_note: str | None = None
    # how the citizen waits: "video" (the waiting page) or "phone" (a call held by sprechstunde/phone);
    # records stored before it existed load as video
    channel: str = "video"

    @property
    def kind(self) -> str:
        return APPOINTMENT if self.appointment_at is not None else WALK_IN

    @property
    def lane(self) -> str:
        return lane(self.office, self.language, self.kind)


@dataclass(frozen=True)
class Enqueued:
    """The result of joining the queue: the entry, the citizen's waiting-room token and where they
    stand (which also says whether anyone online speaks their language)."""

    entry: QueueEntry
    token: str
    status: WaitStatus


@dataclass(frozen=True)
class WaitStatus:
    """What the waiting page shows. `position`/`estimated_wait` (seconds) are None unless waiting;
    `estimated_wait` is also None when no advisor (online or in a consultation) can serve the entry.
    Both follow the order in which advisors will claim (rooms/estimate.py)."""

    entry_id: str
    state: str
    position: int | None
    estimated_wait: float | None
    availability: Availability
    due: bool = True
    room_id: str | None = None
    # rooms/estimate.py: an idle advisor takes this citizen at once ("gleich"); how many advisors who
    # could serve them are in a consultation right now (they count even with their console closed)
    advisor_free: bool = False
    advisors_busy: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "state": self.state,
            "position": self.position,
            "estimated_wait_seconds": None if self.estimated_wait is None else round(self.estimated_wait),
            "due": self.due,
            "advisor_free": self.advisor_free,
            "advisors_busy": self.advisors_busy,
            "room_id": self.room_id,
            "advisors_online": self.availability.advisors_online,
            "language_available": self.availability.language_available,
            "languages_online": list(self.availability.languages_online),
        }


@dataclass(frozen=True)
class Consultation:
    """A claimed entry and the fresh room its consultation takes place in."""

    entry: QueueEntry
    room: Room


@dataclass(frozen=True)
class Outcome:
    entry: QueueEntry
    outcome: str
    wait_seconds: float
    handling_seconds: float
    ticket: Ticket | None = None
