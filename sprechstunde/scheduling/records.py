"""The records of scheduling: a slot, a booking and what booking or joining answers, the person's details,
the store kinds and states — plain data that the slot calendar, the booking service, the HTTP layer
and the mail job share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sprechstunde.contact import valid_email, valid_phone
from sprechstunde.rooms.offices import Office
from sprechstunde.rooms.text import has_bidi, strip_bidi
from sprechstunde.scheduling.errors import BookingError

BOOKING_KIND = "booking"
SEATS_KIND = "booking-seats"
IDEMPOTENCY_KIND = "booking-idempotency"
REFERENCE_KIND = "booking-reference"
JOIN_LOCK_KIND = "booking-join-lock"
# marks that `release_orphan_seats` has repaired this store once (it need not read every seat again)
REPAIR_KIND, ORPHAN_SEATS_REPAIRED = "booking-repair", "orphan-seats"
MANAGE_PURPOSE = "booking-manage"
JOIN_PURPOSE = "booking-join"

BOOKED, CANCELLED, RESCHEDULED, NO_SHOW = "booked", "cancelled", "rescheduled", "no_show"
# How far ahead citizens can book, and how long the manage link outlives the appointment.
HORIZON_DAYS = 90
TOKEN_DAYS_AFTER = 60
# The join link opens the waiting room this many seconds before the start.
JOIN_LEAD = 600
IDEMPOTENCY_TTL = 24 * 3600
# A claim on an idempotency key whose booking never came (the process died in between) is taken over by
# a retry after this many seconds; until then a retry is told the first request is still in progress.
IDEMPOTENCY_STALE = 60
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")
MAX_NAME = 100
FORGOTTEN = "–"  # the name of a booking whose personal data was removed after the retention period


@dataclass(frozen=True)
class Slot:
    starts_at: datetime  # in the office's time zone
    ends_at: datetime
    advisors: tuple[str, ...]

    @property
    def capacity(self) -> int:
        return len(self.advisors)

    def as_json(self) -> dict[str, Any]:
        return {
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "free": self.capacity,
        }


@dataclass(frozen=True)
class Booking:
    """One appointment. `starts_at`/`ends_at` are UTC timestamps; `busy_until` adds the buffer."""

    booking_id: str
    reference: str
    office: str
    service: str
    channel: str
    language: str
    starts_at: float
    ends_at: float
    busy_until: float
    advisor: str
    name: str
    email: str | None
    phone: str | None
    created_at: float
    status: str = BOOKED
    changed_at: float | None = None
    changed_by: str | None = None
    # Only on bookings moved before issue 17 (a move then made a new booking); a move now keeps the booking.
    rescheduled_from: str | None = None
    rescheduled_to: str | None = None
    entry_id: str | None = None
    wait_token: str | None = None
    # mail kind ("confirmation", "reminder", "moved", "cancelled") → UTC timestamp when sent
    mails: dict[str, float] = field(default_factory=dict)
    # How often the appointment was moved: its iCalendar SEQUENCE, so calendars replace the old time.
    sequence: int = 0
    # The expiry the manage and join tokens were signed with, kept when the appointment moves so that
    # its links stay the same (None: never moved, derived from `ends_at`; issue 17, item 11).
    token_exp: int | None = None

    def local_start(self, office: Office) -> datetime:
        return datetime.fromtimestamp(self.starts_at, office.timezone)

    def local_end(self, office: Office) -> datetime:
        return datetime.fromtimestamp(self.ends_at, office.timezone)


@dataclass(frozen=True)
class Booked:
    """A booking with the two capability tokens its holder needs; `replayed` when an idempotent
    repeat of an earlier request returned the earlier booking."""

    booking: Booking
    manage_token: str
    join_token: str | None
    replayed: bool = False


@dataclass(frozen=True)
class JoinState:
    """What the join link does now: `early` (countdown to `opens_at`), `open` (go to the waiting room
    with `wait_token`), `over`, or `cancelled`."""

    state: str
    booking: Booking
    opens_at: float
    wait_token: str | None = None


@dataclass(frozen=True)
class Person:
    name: str
    email: str | None
    phone: str | None


def check_person(name: Any, email: Any, phone: Any, consent: Any) -> Person:
    """The citizen's details; each problem has its own code so a form can point at the field."""
    if consent is not True:
        raise BookingError("consent_required", "agree to the privacy notice to book", 400, field="consent")
    name = " ".join(strip_bidi(name).split()) if isinstance(name, str) else ""  # finding 13: no overrides
    if not name:
        raise BookingError("invalid_name", "your name is required", 400, field="name")
    if len(name) > MAX_NAME:
        raise BookingError(
            "invalid_name", f"the name may have at most {MAX_NAME} characters", 400, field="name"
        )
    clean_email = None
    if email not in (None, ""):
        # issue 15, finding 13: an address with text-direction characters is refused, not cleaned
        if isinstance(email, str) and len(email.strip()) <= 200 and not has_bidi(email):
            clean_email = valid_email(email)
        if clean_email is None:
            raise BookingError("invalid_email", "this is not an e-mail address", 400, field="email")
    clean_phone = None
    if phone not in (None, ""):
        # stored as the citizen wrote it (the advisor reads it back); valid_phone only judges it
        if not isinstance(phone, str) or valid_phone(phone) is None:
            raise BookingError("invalid_phone", "this is not a phone number", 400, field="phone")
        clean_phone = phone.strip()
    return Person(name, clean_email, clean_phone)


def parse_instant(value: Any) -> datetime:
    """An ISO 8601 date-time with offset (as the slot list gives it)."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) and len(value) < 40 else None
        # Years 1 and 9999 are refused, so that no time zone's wall time of it can leave the calendar's
        # range (astimezone would raise OverflowError; issue 15, finding 10).
        if moment is not None and moment.tzinfo is not None and not 1 < moment.astimezone(UTC).year < 9999:
            moment = None
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BookingError(
            "invalid_time", "starts_at must be an ISO 8601 date-time with offset, as the slot list gives it"
        )
    return moment
