"""The booking API's JSON bodies and answers (web/booking/api.py).

The citizen's details are judged by the scheduling domain's own `check_person` and the time by its
`parse_instant`, called from here; the office, service, channel, language and the slot itself need the
catalog and the calendar, so `SchedulingService` decides those after the body has passed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, model_validator

from sprechstunde.scheduling.availability import MAX_ABSENCES, parse_availability
from sprechstunde.scheduling.catalog import CHANNELS
from sprechstunde.scheduling.records import IDEMPOTENCY_KEY, MAX_NAME, check_person, parse_instant
from sprechstunde.web.core.models import Answer, Body, apply, checked
from sprechstunde.web.waiting.models import OfficeRef

Channel = Literal[CHANNELS]  # type: ignore[valid-type]


def described(schema: dict[str, Any]) -> Any:
    """A field the domain judges against its data (catalog, calendar): the JSON shape it documents."""
    return WithJsonSchema(schema)


def _instant(value: Any) -> Any:
    parse_instant(value)  # the domain's rule; the text itself goes on to SchedulingService
    return value


StartsAt = Annotated[
    str,
    Field(
        json_schema_extra={"format": "date-time"},
        description="ISO 8601 with offset, from the slot list",
        examples=["2027-01-12T09:00:00+01:00"],
    ),
    checked(_instant),
]


class BookingRequest(Body):
    """Book a slot; one free advisor is assigned."""

    office: Annotated[Any, described({"type": "string", "examples": ["vhs"]})]
    service: Annotated[Any, described({"type": "string"})]
    channel: Annotated[Any, described({"enum": list(CHANNELS)})]
    starts_at: StartsAt
    name: Annotated[Any, described({"type": "string", "minLength": 1, "maxLength": MAX_NAME})]
    email: Annotated[Any, described({"type": ["string", "null"], "format": "email"})] = None
    phone: Annotated[Any, described({"type": ["string", "null"], "examples": ["+49 221 1234567"]})] = None
    consent: Annotated[Any, described({"const": True, "description": "agreed to the privacy notice"})]
    language: Annotated[Any, described({"type": "string", "default": "de"})] = "de"
    idempotency_key: Annotated[
        Any,
        described(
            {
                "type": "string",
                "pattern": IDEMPOTENCY_KEY.pattern,
                "description": "or the Idempotency-Key header (which wins); a repeat gets the first booking",
            }
        ),
    ] = None

    @model_validator(mode="after")
    def _person(self) -> BookingRequest:
        apply(check_person, self.name, self.email, self.phone, self.consent)
        return self


class RescheduleIn(Body):
    """Move to another slot: the new one is booked first, then the old one freed."""

    starts_at: StartsAt


class Absence(Answer):
    first: date = Field(alias="from")
    last: date | None = Field(default=None, alias="to", description="default: the same day as from")
    reason: str = Field(default="", max_length=200)


WEEKLY_SCHEMA = {
    "type": "object",
    "propertyNames": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
    "additionalProperties": {
        "anyOf": [{"type": "string"}, {"type": "array", "maxItems": 10, "items": {"type": "string"}}]
    },
    "description": 'weekday (mon…sun) → ["HH:MM-HH:MM", …], Europe/Berlin wall time',
    "examples": [{"mon": ["08:00-12:00"]}],
}


class AvailabilityIn(Body):
    """An advisor's weekly pattern and absences (replaces the stored ones)."""

    weekly: Annotated[Any, described(WEEKLY_SCHEMA)] = Field(default_factory=dict)
    absences: Annotated[
        Any,
        described({"type": "array", "maxItems": MAX_ABSENCES, "items": Absence.model_json_schema()}),
    ] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _valid(cls, data: Any) -> Any:
        apply(parse_availability, "-", data)  # the domain's rule (`invalid_availability` naming the field)
        return data

    def as_json(self) -> dict[str, Any]:
        return {"weekly": self.weekly, "absences": self.absences}


class ServiceView(Answer):
    id: str
    name: str | None = Field(default=None, description="in the requested language")
    names: dict[str, str] | None = Field(default=None, description="every language (no language asked)")
    minutes: int
    buffer_minutes: int
    channels: list[Channel]


class BookingOffice(Answer):
    id: str
    names: dict[str, str]
    address: str
    languages: list[str]
    services: list[ServiceView]


class BookingOfficesOut(Answer):
    offices: list[BookingOffice]


class CalendarDay(Answer):
    date: date
    free_slots: int
    closed: str | None = Field(description="why the office is closed all day, if it is")


class DaysOut(Answer):
    """Days of a month with their number of free slots (for a calendar)."""

    month: str = Field(examples=["2027-01"])
    days: list[CalendarDay]


class OutlookOut(Answer):
    """Where a booking calendar opens, or why nothing can be booked in the language (issue 17, item 12)."""

    language: str
    first_free_day: date | None = Field(description="the first day with a free slot, within the horizon")
    first_month: str | None = Field(examples=["2027-02"], description="the month a calendar opens on")
    reason: Literal["no_advisor", "no_slots"] | None = Field(
        description="no_advisor: nobody of the office who takes appointments speaks the language; "
        "no_slots: nothing free within the booking horizon"
    )
    languages: list[str] = Field(description="the office's other languages with a free slot")
    question_url: str | None = Field(description="POST a written question here instead (no free slot)")


class Slot(Answer):
    starts_at: datetime
    ends_at: datetime
    free: int = Field(description="advisors still free")


class SlotsOut(Answer):
    date: date
    slots: list[Slot]


class MailState(Answer):
    configured: bool


class BookingView(Answer):
    """A booking as the citizen (or the portal acting for them) sees it, with its links."""

    booking_id: str
    reference: str = Field(examples=["T-2027-000042"])
    status: Literal["booked", "cancelled", "rescheduled", "no_show"]
    office: OfficeRef
    service: ServiceView
    channel: Channel
    language: str
    starts_at: datetime
    ends_at: datetime
    name: str
    email: str | None
    phone: str | None
    address: str | None
    join_url: str
    join_opens_at: datetime
    manage_token: str
    manage_url: str
    ics_url: str
    rescheduled_to: str | None
    mail: MailState


class JoinOut(Answer):
    """Where the join link stands: early (see opens_at), open (waiting_url; queues once), over, cancelled."""

    state: str
    opens_at: datetime
    starts_at: datetime
    ends_at: datetime
    waiting_url: str | None


class StaffAppointment(Answer):
    """An appointment on the advisor's list."""

    booking_id: str
    reference: str
    status: str
    office: OfficeRef
    service: ServiceView
    channel: Channel
    language: str
    starts_at: datetime
    ends_at: datetime
    advisor: str
    mine: bool
    name: str
    email: str | None
    phone: str | None
    waiting: bool


class StaffAppointmentsOut(Answer):
    first: date = Field(alias="from")
    days: int
    now: datetime
    appointments: list[StaffAppointment]


class AvailabilityOut(Answer):
    username: str
    weekly: dict[str, list[str]] = Field(description='weekday (mon…sun) → ["HH:MM-HH:MM", …]')
    absences: list[Absence]
