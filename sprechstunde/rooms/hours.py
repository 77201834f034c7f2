"""Service hours: is an office open at a given moment, and when does it open next.

Opening hours are wall-clock times in the office's time zone, so they are compared as wall-clock times:
08:00 is 07:00 UTC in winter and 06:00 UTC in summer, and a day on which the clocks change (last Sunday
of March or October) simply has 23 or 25 hours. Instants are compared in UTC only, because Python
compares two datetimes with the same tzinfo by wall time and would misorder the repeated hour in October.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sprechstunde.rooms.offices import Office

# An office with no opening day in a year and a bit is treated as never opening.
HORIZON_DAYS = 400


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a time-zone-aware datetime is required")
    return at


def opening_intervals(office: Office, day: date) -> list[tuple[datetime, datetime]]:
    """The office's opening periods on a local calendar day, as aware datetimes in its time zone;
    empty on closures and public holidays."""
    if office.closed_reason(day) is not None:
        return []
    tz = office.timezone
    periods = []
    for start, end in office.hours[day.weekday()]:
        # Through UTC and back: a wall time in the spring-forward gap becomes the real instant after it.
        opens = datetime.combine(day, start, tz).astimezone(UTC).astimezone(tz)
        closes = datetime.combine(day, end, tz).astimezone(UTC).astimezone(tz)
        periods.append((opens, closes))
    return periods


def is_open(office: Office, at: datetime) -> bool:
    """Whether walk-ins are served at the instant `at` (any time zone)."""
    local = _aware(at).astimezone(office.timezone)
    if office.closed_reason(local.date()) is not None:
        return False
    wall = local.time().replace(tzinfo=None)
    return any(start <= wall < end for start, end in office.hours[local.weekday()])


def next_opening(office: Office, after: datetime) -> datetime | None:
    """The earliest instant at or after `after` at which the office is open (`after` itself when it is
    open then), in the office's time zone; None when it does not open within HORIZON_DAYS."""
    after_utc = _aware(after).astimezone(UTC)
    day = after_utc.astimezone(office.timezone).date()
    for _ in range(HORIZON_DAYS):
        for opens, closes in opening_intervals(office, day):
            if closes.astimezone(UTC) > after_utc:
                return opens if opens.astimezone(UTC) >= after_utc else after_utc.astimezone(office.timezone)
        day += timedelta(days=1)
    return None


def closes_at(office: Office, at: datetime) -> datetime | None:
    """When the current opening period ends, or None when the office is closed at `at`."""
    at_utc = _aware(at).astimezone(UTC)
    for opens, closes in opening_intervals(office, at_utc.astimezone(office.timezone).date()):
        if opens.astimezone(UTC) <= at_utc < closes.astimezone(UTC):
            return closes
    return None
