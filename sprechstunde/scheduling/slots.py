"""The slot calendar: what can be booked when (read-only; booking itself is in bookings.py).

For each opening period of the office on a local day (closures and public holidays already removed by
`rooms.hours.opening_intervals`), a service's slots start at the period's opening and follow each other
every `minutes + buffer`, computed on UTC instants, so a day on which the clocks change has the right
number of slots. A slot's capacity is the number of advisors of the office who speak the booking's
language, are available then (weekly pattern, absences) and hold no overlapping booking (their seat
record of that day).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sprechstunde.rooms import hours
from sprechstunde.rooms.offices import Office, OfficeDirectory
from sprechstunde.rooms.routing import may_serve
from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.scheduling.availability import AvailabilityBook
from sprechstunde.scheduling.catalog import Service, ServiceCatalog
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.records import HORIZON_DAYS, SEATS_KIND, Slot, parse_instant
from sprechstunde.store.port import Store

NO_ADVISOR, NO_SLOTS = "no_advisor", "no_slots"


@dataclass(frozen=True)
class Outlook:
    """Whether and from when a service can be booked in a language: `first_free` is the first day
    with a free slot; without one, `reason` says why (NO_ADVISOR: nobody of the office who takes
    appointments speaks the language; NO_SLOTS: nothing free within the booking horizon) and
    `languages` lists the office's other languages that do have a free slot."""

    language: str
    first_free: date | None
    reason: str | None = None
    languages: tuple[str, ...] = ()


class SlotCalendar:
    """Offices, services and their free slots; the base of SchedulingService, which books them."""

    def __init__(
        self,
        store: Store,
        offices: OfficeDirectory,
        catalog: ServiceCatalog,
        staff: StaffDirectory,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self.offices = offices
        self.catalog = catalog
        self._staff = staff
        self.clock = clock
        self.availability = AvailabilityBook(store)

    def service(self, office_id: Any, service_id: Any, channel: Any = None) -> tuple[Office, Service]:
        """The office and service, checking `channel` when given."""
        office = self.offices.get(office_id) if isinstance(office_id, str) else None
        if office is None:
            raise BookingError("unknown_office", f"there is no office {str(office_id)[:40]!r}", 404)
        service = self.catalog.require(office.id, service_id)
        if channel is not None and channel not in service.channels:
            raise BookingError(
                "invalid_channel",
                f"{service.name('de')} is offered as {' or '.join(service.channels)}",
                400,
                channels=list(service.channels),
            )
        return office, service

    def check_language(self, office: Office, language: Any) -> str:
        return office.check_language(language, BookingError)

    def grid(self, office: Office, service: Service, day: date) -> list[tuple[datetime, datetime]]:
        """Every slot of `service` on the office's local `day`, booked or not (empty when closed)."""
        step = timedelta(minutes=service.minutes + service.buffer)
        length = timedelta(minutes=service.minutes)
        slots = []
        for opens, closes in hours.opening_intervals(office, day):
            start, end = opens.astimezone(UTC), closes.astimezone(UTC)
            while start + length <= end:
                slots.append(
                    (start.astimezone(office.timezone), (start + length).astimezone(office.timezone))
                )
                start += step
        return slots

    async def _advisors(self, office: Office, language: str) -> dict[str, Any]:
        """username → availability of the serving staff of `office` who speak `language`."""
        patterns = await self.availability.all()
        return {
            m.username: patterns[m.username]
            for m in await self._staff.members()
            if may_serve(m) and office.id in m.offices and language in m.languages and m.username in patterns
        }

    async def _seats(self, username: str, day: date) -> list[list[Any]]:
        record = await self._store.get(SEATS_KIND, seat_key(username, day))
        return record["busy"] if record else []

    async def slots(
        self,
        office_id: Any,
        service_id: Any,
        day: date,
        *,
        channel: Any = None,
        language: Any = "de",
        include_full: bool = False,
    ) -> list[Slot]:
        """The future slots of a day with their free advisors (only those with a free seat unless
        `include_full`)."""
        office, service = self.service(office_id, service_id, channel)
        language = self.check_language(office, language)
        return await self._day_slots(office, service, day, language, include_full=include_full)

    async def _day_slots(
        self,
        office: Office,
        service: Service,
        day: date,
        language: str,
        *,
        include_full: bool = False,
        ignore: str | None = None,
        advisors: dict[str, Any] | None = None,
    ) -> list[Slot]:
        now = self.clock()
        grid = [(s, e) for s, e in self.grid(office, service, day) if s.timestamp() > now]
        if not grid:
            return []
        advisors = await self._advisors(office, language) if advisors is None else advisors
        seats = {name: await self._seats(name, day) for name in advisors}
        buffer = service.buffer * 60
        slots = []
        for start, end in grid:
            free = tuple(
                name
                for name, pattern in advisors.items()
                if within(pattern.intervals(day), start, end)
                and not overlaps(seats[name], start.timestamp(), end.timestamp() + buffer, ignore)
            )
            if free or include_full:
                slots.append(Slot(start, end, free))
        return slots

    async def days(
        self, office_id: Any, service_id: Any, month: date, *, channel: Any = None, language: Any = "de"
    ) -> list[dict[str, Any]]:
        """Each day of `month` (any date in it) with its number of free slots, for a calendar."""
        office, service = self.service(office_id, service_id, channel)
        language = self.check_language(office, language)
        advisors = await self._advisors(office, language)
        first = month.replace(day=1)
        last_bookable = self._today(office) + timedelta(days=HORIZON_DAYS)
        result, day = [], first
        while day.month == first.month:
            free = 0
            closed = office.closed_reason(day)
            if day <= last_bookable and advisors:
                slots = await self._day_slots(office, service, day, language, advisors=advisors)
                free = len(slots)
            result.append({"date": day.isoformat(), "free_slots": free, "closed": closed})
            day += timedelta(days=1)
        return result

    async def outlook(
        self, office_id: Any, service_id: Any, *, channel: Any = None, language: Any = "de"
    ) -> Outlook:
        """Where the calendar should open, or why it has nothing to offer and what else does (issue
        17, item 12): a citizen should not page through empty months to learn that nobody speaks
        their language."""
        office, service = self.service(office_id, service_id, channel)
        language = self.check_language(office, language)
        first = await self._first_free_day(office, service, language)
        if first is not None:
            return Outlook(language, first)
        reason = NO_SLOTS if await self._advisors(office, language) else NO_ADVISOR
        others = [
            code
            for code in office.languages
            if code != language and await self._first_free_day(office, service, code) is not None
        ]
        return Outlook(language, None, reason, tuple(others))

    async def _first_free_day(self, office: Office, service: Service, language: str) -> date | None:
        """The first day from today to the end of the booking horizon with a free slot (the seats are
        read only on days when someone works: a long absence costs no store reads)."""
        advisors = await self._advisors(office, language)
        day = self._today(office)
        last = day + timedelta(days=HORIZON_DAYS)
        while advisors and day <= last:
            working = {name: p for name, p in advisors.items() if p.intervals(day)}
            if working and await self._day_slots(office, service, day, language, advisors=working):
                return day
            day += timedelta(days=1)
        return None

    def _today(self, office: Office) -> date:
        return datetime.fromtimestamp(self.clock(), office.timezone).date()

    def check_slot(self, office: Office, service: Service, starts_at: Any) -> tuple[datetime, datetime]:
        """The slot beginning at `starts_at`, or a precise reason why there is none: `past_slot`,
        `too_far`, `holiday`/`closed_day`, `outside_hours`."""
        start = parse_instant(starts_at).astimezone(office.timezone)
        day = start.date()
        if start.timestamp() <= self.clock():
            raise BookingError("past_slot", "this time has already passed; choose a later slot", 400)
        if day > self._today(office) + timedelta(days=HORIZON_DAYS):
            raise BookingError("too_far", f"appointments can be booked up to {HORIZON_DAYS} days ahead", 400)
        holiday = office.holidays.get(day)
        if holiday is not None:
            raise BookingError("holiday", f"{day.isoformat()} is a public holiday ({holiday})", 400)
        if office.closed_reason(day) is not None:
            raise BookingError("closed_day", f"{office.name('de')} is closed on {day.isoformat()}", 400)
        for s, e in self.grid(office, service, day):
            if s.timestamp() == start.timestamp():
                return s, e
        raise BookingError(
            "outside_hours", "there is no slot at this time; choose one from the slot list", 400
        )


def within(intervals: Any, start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies inside one of the wall-clock intervals of its local day."""
    if start.date() != end.date():
        return False
    a, z = start.time(), end.time()
    return any(lo <= a and z <= hi for lo, hi in intervals)


def seat_key(username: str, day: date) -> str:
    """The seat record of one advisor's local day."""
    return f"{username}|{day.isoformat()}"


def overlaps(busy: list[list[Any]], start: float, until: float, ignore: str | None = None) -> bool:
    return any(b[0] < until and start < b[1] and b[2] != ignore for b in busy)
