"""When an advisor can take appointments: a weekly pattern of wall-clock intervals plus absences
(holiday leave, training days). Kept in the store so every process agrees and a restart loses nothing.

An advisor without a stored pattern takes no appointments: being staff of an office does not make
someone bookable until they (or an office lead) say when.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sprechstunde.rooms.offices import WEEKDAYS, Closure, Interval, parse_week
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.store.port import Store

AVAILABILITY_KIND = "advisor-availability"
MAX_ABSENCES = 200


# An advisor's days off are the same date range as an office's closure.
Absence = Closure


@dataclass(frozen=True)
class Availability:
    username: str
    weekly: tuple[tuple[Interval, ...], ...] = ((),) * 7
    absences: tuple[Absence, ...] = field(default_factory=tuple)

    def intervals(self, day: date) -> tuple[Interval, ...]:
        """Wall-clock intervals on `day`; none when absent."""
        if any(absence.covers(day) for absence in self.absences):
            return ()
        return self.weekly[day.weekday()]

    def as_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "weekly": {
                day: [f"{a:%H:%M}-{b:%H:%M}" for a, b in intervals]
                for day, intervals in zip(WEEKDAYS, self.weekly, strict=True)
                if intervals
            },
            "absences": [
                {"from": a.first.isoformat(), "to": a.last.isoformat(), "reason": a.reason}
                for a in self.absences
            ],
        }


def parse_availability(username: str, data: Any) -> Availability:
    """From the API's JSON: {"weekly": {"mon": ["08:00-12:00", …]}, "absences": [{"from", "to",
    "reason"}]}; `invalid_availability` (400) naming the field otherwise."""

    def fail(where: str, problem: str) -> BookingError:
        return BookingError("invalid_availability", f"{where}: {problem}", 400, field=where)

    if not isinstance(data, dict):
        raise fail("-", "a JSON object with weekly and absences")
    weekly_data = data.get("weekly", {})
    if not isinstance(weekly_data, dict):
        raise fail("weekly", 'an object such as {"mon": ["08:00-12:00"]}')
    week = parse_week(weekly_data, "weekly", fail, max_per_day=10)
    absences_data = data.get("absences", [])
    if not isinstance(absences_data, list) or len(absences_data) > MAX_ABSENCES:
        raise fail("absences", f"a list of at most {MAX_ABSENCES} {{from, to, reason}} objects")
    absences = []
    for index, item in enumerate(absences_data):
        where = f"absences[{index}]"
        if not isinstance(item, dict):
            raise fail(where, "an object with from (YYYY-MM-DD), to and reason")
        try:
            first = date.fromisoformat(item.get("from"))
            last = date.fromisoformat(item.get("to", item.get("from")))
        except (TypeError, ValueError):
            raise fail(where, "from and to must be dates YYYY-MM-DD") from None
        reason = item.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 200:
            raise fail(f"{where}.reason", "a text of at most 200 characters")
        if last < first:
            raise fail(where, "the range ends before it starts")
        absences.append(Absence(first, last, reason.strip()))
    return Availability(username, week, tuple(absences))


class AvailabilityBook:
    """Advisors' availability records in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, username: str) -> Availability | None:
        record = await self._store.get(AVAILABILITY_KIND, username)
        return None if record is None else parse_availability(username, record)

    async def set(self, availability: Availability) -> Availability:
        """Replace the pattern. Existing bookings stay; slots offered from now on follow it."""
        await self._store.put(AVAILABILITY_KIND, availability.username, availability.as_json())
        return availability

    async def all(self) -> dict[str, Availability]:
        return {
            username: parse_availability(username, record)
            for username, record in await self._store.scan(AVAILABILITY_KIND)
        }


def office_pattern(hours: tuple[tuple[Interval, ...], ...], username: str) -> Availability:
    """A pattern equal to an office's service hours: the demo advisor's default."""
    return Availability(username, tuple(tuple(day) for day in hours))


async def ensure_pattern(store: Store, username: str, hours: tuple[tuple[Interval, ...], ...]) -> bool:
    """Give `username` a pattern equal to `hours` unless they have one (the demo advisor); True if set."""
    return await store.create(AVAILABILITY_KIND, username, office_pattern(hours, username).as_json())
