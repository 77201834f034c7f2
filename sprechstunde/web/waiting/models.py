"""The waiting room's JSON bodies and answers (POST /api/queue, GET /api/offices), and the pieces other
areas share with it: an office reference, an entry as the console shows it, the wait status.

Rules that need no data are the domain's own (`sprechstunde.rooms.intake`), called through `checked`;
whether the office exists and advises in the language is decided by the queue service afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.intake import (
    MAX_NOTE,
    MAX_TOPIC,
    MAX_TRANSCRIPT_MESSAGES,
    TRANSCRIPT_ROLES,
    check_note,
    check_topic,
    check_transcript,
)
from sprechstunde.web.core.models import Answer, Body, checked


def no_office(value: Any) -> QueueError:
    """The refusal of an office id that is not one of this city's (or not text at all)."""
    return QueueError("unknown_office", f"there is no office {str(value)[:40]!r}", 400)


def _office_text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise no_office(value)
    return value


def _office_required(value: Any) -> str:
    if not isinstance(value, str):
        raise no_office(value)
    return value


def _optional(check: Any) -> Any:
    return lambda value: None if value is None else check(value)


# An office id sent by a citizen or advisor; null or absent where the route says so.
OfficeId = Annotated[str, Field(examples=["vhs"]), checked(_office_text)]
# An office id that must be given.
RequiredOfficeId = Annotated[str, Field(examples=["vhs"]), checked(_office_required)]
# A language the office advises in: checked against the office by the domain (`unknown_language`).
Language = Annotated[Any, WithJsonSchema({"type": "string", "examples": ["de"]})]
Topic = Annotated[str, Field(min_length=1, max_length=MAX_TOPIC), checked(check_topic)]
Note = Annotated[
    Annotated[str, Field(min_length=1, max_length=MAX_NOTE)] | None, checked(_optional(check_note))
]


class TranscriptMessage(Body):
    role: Literal[TRANSCRIPT_ROLES]  # type: ignore[valid-type]
    text: str


class EnqueueIn(Body):
    """Join an office's queue (POST /api/queue)."""

    office: OfficeId | None = Field(default=None, description="office id; none: one that offers `language`")
    language: Language
    topic: Topic
    note: Note = None
    transcript: Annotated[
        Annotated[list[TranscriptMessage], Field(max_length=MAX_TRANSCRIPT_MESSAGES)] | None,
        Field(description="the chatbot conversation, for the advisor"),
        checked(_optional(check_transcript)),
    ] = None

    def transcript_json(self) -> list[dict[str, str]] | None:
        return None if self.transcript is None else [m.model_dump() for m in self.transcript]


class OfficeRef(Answer):
    id: str
    name: str


class WaitStatus(Answer):
    """Where the entry stands (as the `queue-status` message of /ws/queue)."""

    entry_id: str
    state: str
    position: int | None
    estimated_wait_seconds: int | None
    due: bool
    advisor_free: bool = Field(description="an idle advisor takes this citizen at once (rooms/estimate.py)")
    advisors_busy: int = Field(description="advisors who could serve the entry and are in a consultation")
    room_id: str | None
    advisors_online: int
    language_available: bool
    languages_online: list[str]


class EnqueueOut(Answer):
    """Queued: the waiting-room link (its token is the citizen's only key to the place)."""

    entry_id: str
    waiting_url: str
    waiting_token: str
    office: OfficeRef
    status: WaitStatus


class Appointment(Answer):
    starts_at: datetime
    booking_id: str | None


class EntryView(Answer):
    """A place in the queue as the console shows it (never the advisor's name)."""

    entry_id: str
    office: str
    office_name: str
    language: str
    topic: str
    note: str | None
    enqueued_at: datetime
    waited_seconds: int
    appointment: Appointment | None
    transferred_from: list[str]
    channel: Literal["video", "phone"] = Field(default="video", description="how the citizen waits")
    transcript: list[TranscriptMessage] | None = Field(default=None, description="where the view has it")
    handover_note: str | None = Field(default=None, description="staff only: the colleagues' note")


class OfficeHours(Answer):
    day: str
    intervals: list[str] = Field(examples=[["08:00-12:00"]])


class OfficeInfo(Answer):
    """An office: open now, next opening, closing time, languages and weekly hours."""

    id: str
    names: dict[str, str]
    languages: list[str]
    open_now: bool
    next_opening: datetime | None
    closes_at: datetime | None
    hours: list[OfficeHours]


class OfficesOut(Answer):
    offices: list[OfficeInfo]
