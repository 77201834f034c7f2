"""Follow-up tickets: what an office still owes a citizen after a consultation (or a question left
outside service hours). References are `SP-<year>-<000123>`, counted per year by the store's atomic
counter, so two advisors closing at the same moment never get the same number.

Retention (issue 15, finding 7): `erase_closed` removes a ticket's personal fields — the notes or the
citizen's question, the contact address, the free-text topic — once it has been closed ("done") longer
than the retention period. The record itself (reference, office, language, source, status, dates) stays
for statistics; `erased_at` says the text was removed on purpose."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sprechstunde.clock import Now
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import DEFAULT_TIMEZONE, OfficeDirectory
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.rooms.text import strip_bidi
from sprechstunde.store.port import Record, Store, from_record, update

TICKET_KIND = "ticket"
SEQUENCE_KIND = "ticket-seq"
TICKET_STATUSES = ("open", "in_progress", "done")
# How staff lists narrow tickets (issue 17 item 10): still to do ("open": open or in progress), finished
# ("closed": done), or everything; a finished ticket stays findable instead of vanishing from the console.
TICKET_STATES = ("open", "closed", "all")
MAX_TICKET_SEARCH = 100
MAX_TICKET_NOTES = 2000
REFERENCE_PREFIX = "SP"


def format_reference(year: int, number: int) -> str:
    return f"{REFERENCE_PREFIX}-{year}-{number:06d}"


@dataclass(frozen=True)
class Ticket:
    reference: str
    office: str
    notes: str
    status: str
    created_at: float
    updated_at: float
    created_by: str | None = None
    entry_id: str | None = None
    language: str | None = None
    topic: str | None = None
    # "consultation" (an advisor's follow-up) or "question" (a citizen's question left in writing)
    source: str = "consultation"
    # how the office answers a question: an e-mail address or phone number the citizen gave
    contact: str | None = None
    # when the ticket was last set to "done" (None while it is open); retention counts from here
    closed_at: float | None = None
    # when its personal fields were erased after the retention period (None: not yet)
    erased_at: float | None = None


def ticket_filter(state: str | None = "all", text: str | None = "") -> Callable[[Ticket], bool]:
    """Which tickets a staff list shows: those in `state` (TICKET_STATES; "open" = open or in progress,
    "closed" = done) whose reference, topic, notes or contact contain `text` (case-insensitive). Used by
    the console's filter and by GET /api/tickets?state=&q=. Checked once, before any ticket is read:
    QueueError `invalid_state` / `invalid_search` (400)."""
    state = state or "all"
    if state not in TICKET_STATES:
        raise QueueError("invalid_state", f"state must be one of {', '.join(TICKET_STATES)}")
    needle = (text or "").strip().casefold()
    if len(needle) > MAX_TICKET_SEARCH:
        raise QueueError("invalid_search", f"the search text may have at most {MAX_TICKET_SEARCH} characters")

    def wanted(ticket: Ticket) -> bool:
        if state != "all" and (ticket.status == "done") != (state == "closed"):
            return False
        fields = (ticket.reference, ticket.topic, ticket.notes, ticket.contact)
        return not needle or any(needle in field.casefold() for field in fields if field)

    return wanted


def check_notes(notes: str | None, limit: int = MAX_TICKET_NOTES) -> str:
    """Notes trimmed; QueueError `invalid_notes` / `notes_too_long` otherwise."""
    if notes is None:
        return ""
    if not isinstance(notes, str):
        raise QueueError("invalid_notes", "notes must be text")
    notes = strip_bidi(notes).strip()  # issue 15, finding 13: no direction overrides
    if len(notes) > limit:
        raise QueueError("notes_too_long", f"notes may have at most {limit} characters")
    return notes


class TicketBook:
    def __init__(
        self,
        store: Store,
        offices: OfficeDirectory,
        clock: Now = time.time,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> None:
        self._store = store
        self._offices = offices
        self._clock = clock
        # The year in a reference is the city's calendar year, not UTC's (New Year's Eve 23:30 is 2026).
        self._tz = ZoneInfo(timezone)

    async def open(
        self,
        office: str,
        notes: str | None,
        *,
        created_by: str | None = None,
        entry_id: str | None = None,
        language: str | None = None,
        topic: str | None = None,
        source: str = "consultation",
        contact: str | None = None,
    ) -> Ticket:
        """A new open ticket with the next reference of the current year."""
        self._offices.require(office)
        notes = check_notes(notes)
        now = self._clock()
        year = datetime.fromtimestamp(now, self._tz).year
        number = await self._store.incr(SEQUENCE_KIND, str(year))
        ticket = Ticket(
            reference=format_reference(year, number),
            office=office,
            notes=notes,
            status="open",
            created_at=now,
            updated_at=now,
            created_by=created_by,
            entry_id=entry_id,
            language=language,
            topic=topic,
            source=source,
            contact=contact,
        )
        if not await self._store.create(TICKET_KIND, ticket.reference, asdict(ticket)):
            # Only possible if someone reset the counter by hand; never overwrite an existing ticket.
            raise QueueError("conflict", f"ticket {ticket.reference} exists already", 409)
        return ticket

    async def get(self, reference: str) -> Ticket | None:
        if not isinstance(reference, str) or len(reference) > 40:
            return None
        record = await self._store.get(TICKET_KIND, reference)
        return None if record is None else from_record(Ticket, record)

    async def for_office(self, office: str, status: str | None = None) -> list[Ticket]:
        """An office's tickets, newest first, optionally of one status."""
        tickets = [from_record(Ticket, r) for _, r in await self._store.scan(TICKET_KIND)]
        return sorted(
            (t for t in tickets if t.office == office and (status is None or t.status == status)),
            key=lambda t: (t.created_at, t.reference),
            reverse=True,
        )

    async def update(
        self, member: StaffMember, reference: str, *, status: str | None = None, notes: str | None = None
    ) -> Ticket:
        """Change status and/or notes; only staff of the ticket's office may (admins may too)."""
        if status is not None and status not in TICKET_STATUSES:
            raise QueueError("invalid_status", f"status must be one of {', '.join(TICKET_STATUSES)}")
        notes = None if notes is None else check_notes(notes)
        if not isinstance(reference, str):
            raise QueueError("unknown_ticket", f"there is no ticket {reference!r}", 404)

        def change(record: Record | None) -> Record:
            if record is None:
                raise QueueError("unknown_ticket", f"there is no ticket {reference!r}", 404)
            if member.disabled or (member.role != "admin" and record["office"] not in member.offices):
                raise QueueError("forbidden_office", "this ticket belongs to another office", 403)
            now = self._clock()
            changes: dict[str, object] = {"updated_at": now}
            if status is not None:
                changes["status"] = status
                if status != "done":
                    changes["closed_at"] = None
                elif record.get("status") != "done":
                    changes["closed_at"] = now
            if notes is not None:
                changes["notes"] = notes
            return record | changes

        updated = await update(self._store, TICKET_KIND, reference, change)
        return from_record(Ticket, updated.after)

    async def erase_closed(self, retention: float) -> int:
        """Erase the personal fields of tickets closed more than `retention` seconds ago (a ticket closed
        before closing times were recorded counts from its last change); returns how many. Idempotent,
        and safe next to a concurrent update: a ticket reopened meanwhile is left alone."""
        horizon = self._clock() - retention
        erased = 0

        def erase(record: Record | None) -> Record | None:
            if record is None or not _erasable(record, horizon):
                return record  # gone, or reopened meanwhile: left as it is
            return record | {"notes": "", "contact": None, "topic": None, "erased_at": self._clock()}

        for reference, record in await self._store.scan(TICKET_KIND):
            if _erasable(record, horizon):
                erased += (await update(self._store, TICKET_KIND, reference, erase)).written
        return erased


def _erasable(record: dict, horizon: float) -> bool:
    closed = record.get("closed_at") or record.get("updated_at", 0.0)
    holds_text = bool(record.get("notes") or record.get("contact") or record.get("topic"))
    return record.get("status") == "done" and closed <= horizon and holds_text
