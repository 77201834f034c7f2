"""Bodies and answers of the advisor's routes after "Nächste Person" (consultations, tickets), of the
citizen's written question, and of the statistics (web/consultations/api.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator

from sprechstunde.rooms.consultations import OUTCOMES
from sprechstunde.rooms.intake import MAX_CONTACT, MAX_QUESTION, check_contact
from sprechstunde.rooms.tickets import MAX_TICKET_NOTES, TICKET_STATUSES, check_notes
from sprechstunde.web.core.models import Answer, Body, Fails, checked, refuse
from sprechstunde.web.waiting.models import EntryView, Language, Note, OfficeRef, RequiredOfficeId, Topic

Notes = Annotated[
    Annotated[str, Field(max_length=MAX_TICKET_NOTES)] | None,
    checked(lambda value: None if value is None else check_notes(value)),
]
TicketStatus = Literal[TICKET_STATUSES]  # type: ignore[valid-type]
INVALID_STATUS = Fails("invalid_status", f"status must be one of {', '.join(TICKET_STATUSES)}")


class FinishIn(Body):
    """End the consultation; `ticket` opens a follow-up ticket with `notes`."""

    outcome: Annotated[
        Literal[OUTCOMES],  # type: ignore[valid-type]
        Fails("invalid_outcome", f"outcome must be one of {', '.join(OUTCOMES)}"),
    ]
    notes: Notes = None


class TransferIn(Body):
    """Send the citizen into another office's queue, keeping their place in time."""

    office: RequiredOfficeId
    note: Note = Field(default=None, description="for the colleagues there (staff only)")
    language: Language | None = Field(default=None, description="default: the citizen's language")


class TicketChangeIn(Body):
    """Change a ticket's status and/or notes (at least one of them)."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["status"]}, {"required": ["notes"]}]}
    )

    status: Annotated[TicketStatus | None, INVALID_STATUS] = None
    notes: Notes = None

    @model_validator(mode="after")
    def _something(self) -> TicketChangeIn:
        if not {"status", "notes"} & self.model_fields_set:
            raise refuse("nothing_to_change", 'send "status" and/or "notes"')
        return self


class QuestionIn(Body):
    """A citizen's question in writing; the office answers by e-mail or phone."""

    office: RequiredOfficeId
    language: Language
    topic: Topic
    # checked by QueueService.ask: text, not blank (`empty_question`), at most MAX_QUESTION characters
    question: Annotated[Any, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_QUESTION})]
    contact: Annotated[
        str,
        Field(max_length=MAX_CONTACT, description="e-mail address or phone number for the answer"),
        checked(check_contact),
    ]


class TicketView(Answer):
    reference: str = Field(examples=["SP-2026-000123"])
    office: str
    office_name: str
    status: TicketStatus
    source: str
    topic: str | None
    language: str | None
    notes: str
    contact: str | None
    created_at: datetime
    updated_at: datetime


class TicketsOut(Answer):
    tickets: list[TicketView]


class ConsultationView(EntryView):
    room_id: str | None
    advisor_url: str | None


class ConsultationsOut(Answer):
    consultations: list[ConsultationView]


class FinishOut(Answer):
    entry_id: str
    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    wait_seconds: int
    handling_seconds: int
    ticket: TicketView | None


class TransferOut(Answer):
    entry: EntryView


class GuestOut(Answer):
    """A link for an interpreter or a colleague into the running consultation's room."""

    guest_url: str
    expires_at: datetime


class QuestionOut(Answer):
    reference: str = Field(examples=["SP-2026-000123"])
    office: OfficeRef


class ChannelRow(Answer):
    """One channel's share: citizens on the waiting page (`video`) or callers (`phone`)."""

    queued: int
    consultations: int
    resolved: int
    tickets: int
    abandoned: int
    resolved_first_contact: float | None
    abandoned_rate: float | None
    wait_p50_seconds: float | None
    wait_average_seconds: float | None


class StatsRow(Answer):
    queued: int
    consultations: int
    resolved: int
    tickets: int
    no_shows: int
    abandoned: int
    resolved_first_contact: float | None
    abandoned_rate: float | None
    wait_p50_seconds: float | None
    wait_p90_seconds: float | None
    handling_p50_seconds: float | None
    load_per_hour: dict[str, int] = Field(description="hour of day (0-23) → arrivals")
    feedback_count: int = Field(0, description="survey answers (end screen, anonymous)")
    feedback_average: float | None = Field(None, description="mean survey score, 1–5")
    feedback_distribution: dict[str, int] = Field(default_factory=dict, description="score → answers")
    channels: dict[str, ChannelRow] = Field(default_factory=dict, description="video / phone → their share")


class StatsDay(StatsRow):
    day: date
    office: str


class StatisticsOut(Answer):
    offices: list[str]
    first: date = Field(alias="from")
    last: date = Field(alias="to")
    total: StatsRow
    days: list[StatsDay]


class BestHour(Answer):
    hour: int
    median_wait_seconds: int
    samples: int


class BestTimesOut(Answer):
    """Arrival hours with the shortest median wait over the last weeks (real data only)."""

    office: str | None
    days: int
    hours: list[BestHour]
