"""Service hours across DST change days, closures and public holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from sprechstunde.rooms.hours import closes_at, is_open, next_opening, opening_intervals
from sprechstunde.rooms.offices import Closure, load_offices, make_office

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.fixture
def vhs():
    return load_offices().require("vhs")


def test_default_hours(vhs):
    assert is_open(vhs, berlin(2026, 3, 10, 8, 0))  # Tuesday
    assert is_open(vhs, berlin(2026, 3, 10, 16, 59))
    assert not is_open(vhs, berlin(2026, 3, 10, 17, 0))
    assert not is_open(vhs, berlin(2026, 3, 10, 7, 59))
    assert is_open(vhs, berlin(2026, 3, 13, 12, 59))  # Friday until 13:00
    assert not is_open(vhs, berlin(2026, 3, 13, 13, 0))
    assert not is_open(vhs, berlin(2026, 3, 14, 10, 0))  # Saturday


def test_instants_in_other_zones(vhs):
    # 07:30 UTC is 08:30 in Berlin in winter (open) and 09:30 in summer (open); 06:30 UTC is 07:30 / 08:30.
    assert not is_open(vhs, datetime(2026, 3, 10, 6, 30, tzinfo=UTC))
    assert is_open(vhs, datetime(2026, 4, 14, 6, 30, tzinfo=UTC))


def test_naive_datetime_is_refused(vhs):
    with pytest.raises(ValueError):
        is_open(vhs, datetime(2026, 3, 10, 10, 0))
    with pytest.raises(ValueError):
        next_opening(vhs, datetime(2026, 3, 10, 10, 0))


def test_next_opening_is_now_when_open(vhs):
    at = berlin(2026, 3, 10, 10, 15)
    assert next_opening(vhs, at) == at


def test_next_opening_over_the_spring_dst_weekend(vhs):
    # Friday 27 March 2026 after closing → Monday 30 March 08:00 CEST, which is 06:00 UTC (a week
    # earlier the same wall time was 07:00 UTC): the change happens on Sunday the 29th.
    opening = next_opening(vhs, berlin(2026, 3, 27, 14, 0))
    assert opening == berlin(2026, 3, 30, 8, 0)
    assert opening.astimezone(UTC) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    assert next_opening(vhs, berlin(2026, 3, 20, 14, 0)).astimezone(UTC).hour == 7


def test_next_opening_over_the_autumn_dst_weekend(vhs):
    opening = next_opening(vhs, berlin(2026, 10, 23, 14, 0))
    assert opening == berlin(2026, 10, 26, 8, 0)
    assert opening.astimezone(UTC) == datetime(2026, 10, 26, 7, 0, tzinfo=UTC)


def test_sunday_office_on_the_dst_days_themselves():
    week = ((),) * 6 + (((time(1, 0), time(4, 0)), (time(8), time(12))),)
    office = make_office("notdienst", {"de": "Notdienst"}, hours=week, holiday_state=None)
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST. 00:30 UTC is 01:30 CET (open); 01:30 UTC is 03:30 CEST.
    assert is_open(office, datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert is_open(office, datetime(2026, 3, 29, 1, 30, tzinfo=UTC))
    assert not is_open(office, datetime(2026, 3, 29, 2, 0, tzinfo=UTC))  # 04:00 CEST
    # The 01:00–04:00 period lasts two real hours that day, the 08:00 opening is 06:00 UTC.
    (o1, c1), (o2, _) = opening_intervals(office, date(2026, 3, 29))
    assert c1 - o1 == timedelta(hours=3)  # wall-clock difference…
    assert c1.astimezone(UTC) - o1.astimezone(UTC) == timedelta(hours=2)  # …but two real hours
    assert o2.astimezone(UTC) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert next_opening(office, datetime(2026, 3, 29, 2, 0, tzinfo=UTC)) == berlin(2026, 3, 29, 8, 0)
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET, so 01:00–04:00 lasts four real hours.
    (o1, c1), _ = opening_intervals(office, date(2026, 10, 25))
    assert c1.astimezone(UTC) - o1.astimezone(UTC) == timedelta(hours=4)
    for utc_hour in (0, 1, 2):  # 02:xx CEST, 02:xx CET (the repeated hour), 03:xx CET
        assert is_open(office, datetime(2026, 10, 25, utc_hour, 30, tzinfo=UTC))
    assert not is_open(office, datetime(2026, 10, 25, 3, 0, tzinfo=UTC))  # 04:00 CET
    assert closes_at(office, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) == c1
    assert next_opening(office, datetime(2026, 10, 25, 3, 0, tzinfo=UTC)).astimezone(UTC) == datetime(
        2026, 10, 25, 7, 0, tzinfo=UTC
    )


def test_public_holidays_nrw(vhs):
    assert not is_open(vhs, berlin(2026, 4, 3, 10, 0))  # Karfreitag
    assert vhs.closed_reason(date(2026, 4, 3)) == "Karfreitag"
    # Thursday 2 April after closing → not Good Friday, not the weekend, not Easter Monday: Tuesday 7 April.
    assert next_opening(vhs, berlin(2026, 4, 2, 17, 30)) == berlin(2026, 4, 7, 8, 0)
    assert not is_open(vhs, berlin(2026, 6, 4, 10, 0))  # Fronleichnam (NW, not in every state)
    assert not is_open(vhs, berlin(2026, 5, 1, 10, 0))  # Tag der Arbeit, a Friday


def test_holidays_depend_on_the_state():
    nw = make_office("a", {"de": "A"}, holiday_state="NW")
    be = make_office("b", {"de": "B"}, holiday_state="BE")
    corpus_christi = berlin(2026, 6, 4, 10, 0)
    assert not is_open(nw, corpus_christi) and is_open(be, corpus_christi)


def test_closures_are_skipped(vhs):
    # The demo VHS closes 24 Dec 2026 – 1 Jan 2027; 2 and 3 January are a weekend.
    assert not is_open(vhs, berlin(2026, 12, 28, 10, 0))
    assert next_opening(vhs, berlin(2026, 12, 23, 18, 0)) == berlin(2027, 1, 4, 8, 0)
    office = make_office("x", {"de": "X"}, closures=(Closure(date(2026, 3, 11), date(2026, 3, 11)),))
    assert next_opening(office, berlin(2026, 3, 10, 17, 0)) == berlin(2026, 3, 12, 8, 0)


def test_split_hours_and_closing_time():
    standesamt = load_offices().require("standesamt")
    assert not is_open(standesamt, berlin(2026, 3, 9, 12, 30))
    assert next_opening(standesamt, berlin(2026, 3, 9, 12, 30)) == berlin(2026, 3, 9, 13, 0)
    assert closes_at(standesamt, berlin(2026, 3, 9, 9, 0)) == berlin(2026, 3, 9, 12, 0)
    assert closes_at(standesamt, berlin(2026, 3, 9, 12, 30)) is None


def test_never_opening_office():
    office = make_office("never", {"de": "Nie"}, hours=((),) * 7)
    assert next_opening(office, berlin(2026, 3, 10, 10, 0)) is None
