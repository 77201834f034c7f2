"""Offices and their configuration (TOML): names, service hours, closures, time zone, languages.

Loaded once at start-up into an `OfficeDirectory`; a mistake in the file stops the server with a message
naming the file and the field, rather than surfacing later as a wrong opening time.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.service import OFFICE_ID

DEFAULT_TIMEZONE = "Europe/Berlin"
DEFAULT_HOLIDAY_STATE = "NW"
DEFAULT_LANGUAGES = ("de", "en", "fr", "it", "pl", "tr", "ku")
DEFAULT_HANDLING_MINUTES = 10.0
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
_INTERVAL = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*$")
_DAY_RANGE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*(?:\.\.\s*(\d{4}-\d{2}-\d{2})\s*)?$")

Interval = tuple[time, time]
# Mon–Thu 08:00–17:00, Fri 08:00–13:00: the core hours most German city offices publish.
DEFAULT_HOURS: tuple[tuple[Interval, ...], ...] = (
    *([((time(8), time(17)),)] * 4),
    ((time(8), time(13)),),
    (),
    (),
)


class OfficeConfigError(ValueError):
    """The offices file is wrong; the message names the file and the field."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        super().__init__(f"{source}: {path}: {problem}")
        self.source = source
        self.field = path
        self.problem = problem


@dataclass(frozen=True)
class Closure:
    """Days (inclusive) on which an office does not open, e.g. Betriebsferien."""

    first: date
    last: date
    reason: str = ""

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last


@dataclass(frozen=True)
class Office:
    id: str
    names: Mapping[str, str]
    hours: tuple[tuple[Interval, ...], ...] = DEFAULT_HOURS
    closures: tuple[Closure, ...] = ()
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    holiday_state: str | None = DEFAULT_HOLIDAY_STATE
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    handling_minutes: float = DEFAULT_HANDLING_MINUTES
    # Built from holiday_state; the holidays package fills in each year on first use.
    holidays: Mapping[date, str] = field(default_factory=dict, compare=False, repr=False)

    def name(self, language: str = "de") -> str:
        """Display name in `language`, German when there is none."""
        return self.names.get(language) or self.names["de"]

    def check_language(self, language: Any, error: Callable[..., Exception]) -> str:
        """`language` if the office advises in it; otherwise `error` (the caller's error class, built as
        `error(code, message, status, **detail)`) naming the languages it does offer."""
        if not isinstance(language, str) or language not in self.languages:
            raise error(
                "unknown_language",
                f"{self.name('de')} offers consultations in {', '.join(self.languages)}",
                400,
                languages=list(self.languages),
            )
        return language

    def closed_reason(self, day: date) -> str | None:
        """Why the office is shut all day on `day` (closure or public holiday), or None."""
        for closure in self.closures:
            if closure.covers(day):
                return closure.reason or "closure"
        return self.holidays.get(day)


def holiday_calendar(state: str | None) -> Mapping[date, str]:
    """Public holidays of a German federal state (German names); empty when `state` is None."""
    if not state:
        return {}
    return holidays.country_holidays("DE", subdiv=state, language="de")


def make_office(
    office_id: str,
    names: Mapping[str, str],
    *,
    hours: tuple[tuple[Interval, ...], ...] = DEFAULT_HOURS,
    closures: tuple[Closure, ...] = (),
    timezone: str = DEFAULT_TIMEZONE,
    holiday_state: str | None = DEFAULT_HOLIDAY_STATE,
    languages: tuple[str, ...] = DEFAULT_LANGUAGES,
    handling_minutes: float = DEFAULT_HANDLING_MINUTES,
) -> Office:
    """An Office built in code (tests, scripts) with the same defaults as the TOML file."""
    return Office(
        id=office_id,
        names=dict(names),
        hours=hours,
        closures=closures,
        timezone=ZoneInfo(timezone),
        holiday_state=holiday_state or None,
        languages=tuple(languages),
        handling_minutes=float(handling_minutes),
        holidays=holiday_calendar(holiday_state),
    )


class OfficeDirectory:
    """The configured offices by id."""

    def __init__(self, offices: list[Office]) -> None:
        self._offices = {office.id: office for office in offices}

    def __iter__(self) -> Iterator[Office]:
        return iter(self._offices.values())

    def __len__(self) -> int:
        return len(self._offices)

    def __contains__(self, office_id: object) -> bool:
        return office_id in self._offices

    def get(self, office_id: str) -> Office | None:
        return self._offices.get(office_id) if isinstance(office_id, str) else None

    def require(self, office_id: object) -> Office:
        """The office, or QueueError `unknown_office` (404)."""
        office = self.get(office_id) if isinstance(office_id, str) else None
        if office is None:
            raise QueueError("unknown_office", f"there is no office {office_id!r}", 404)
        return office


def demo_offices_path() -> Path:
    """The demo configuration shipped as package data (VHS, Familienbüro, Bürgertelefon, Standesamt)."""
    return Path(str(resources.files("sprechstunde.rooms") / "offices.toml"))


def load_offices(path: Path | str | None = None, *, holiday_state: str | None = None) -> OfficeDirectory:
    """Read an offices file (default: the demo file). `holiday_state` overrides the file's top level
    (e.g. from SPRECHSTUNDE_HOLIDAY_STATE); an office's own setting still wins."""
    path = Path(path) if path is not None else demo_offices_path()
    return parse_offices(read_toml(path), str(path), holiday_state=holiday_state)


def parse_offices(
    data: Mapping[str, Any], source: str, *, holiday_state: str | None = None
) -> OfficeDirectory:
    """Validate a decoded offices file; OfficeConfigError names `source` and the field."""

    def fail(path: str, problem: str) -> OfficeConfigError:
        return OfficeConfigError(source, path, problem)

    known_top = {"timezone", "holiday_state", "languages", "offices"}
    for key in data:
        if key not in known_top:
            raise fail(key, f"unknown setting; expected one of {', '.join(sorted(known_top))}")
    default_tz = _timezone(data.get("timezone", DEFAULT_TIMEZONE), "timezone", fail)
    default_state = _state(
        holiday_state if holiday_state is not None else data.get("holiday_state", DEFAULT_HOLIDAY_STATE),
        "holiday_state",
        fail,
    )
    default_languages = _languages(data.get("languages", list(DEFAULT_LANGUAGES)), "languages", fail)
    offices_data = data.get("offices")
    if not isinstance(offices_data, dict) or not offices_data:
        raise fail("offices", "at least one [offices.<id>] table is required")

    calendars: dict[str | None, Mapping[date, str]] = {}
    offices = []
    for office_id, entry in offices_data.items():
        where = f"offices.{office_id}"
        if not OFFICE_ID.match(office_id):
            raise fail(where, "office id must be a-z, 0-9, _ or - (at most 40 characters)")
        if not isinstance(entry, dict):
            raise fail(where, "must be a table")
        known = {
            "name_de", "name_en", "hours", "closures", "timezone", "holiday_state", "languages",
            "handling_minutes", *NAME_KEYS,
        }  # fmt: skip
        for key in entry:
            if key not in known:
                raise fail(f"{where}.{key}", "unknown setting")
        names = read_names(entry, where, fail)
        state = (
            _state(entry["holiday_state"], f"{where}.holiday_state", fail)
            if "holiday_state" in entry
            else default_state
        )
        if state not in calendars:
            calendars[state] = holiday_calendar(state)
        handling = entry.get("handling_minutes", DEFAULT_HANDLING_MINUTES)
        if isinstance(handling, bool) or not isinstance(handling, int | float) or not 0 < handling <= 480:
            raise fail(f"{where}.handling_minutes", "a number of minutes between 0 and 480")
        offices.append(
            Office(
                id=office_id,
                names=names,
                hours=_hours(entry["hours"], f"{where}.hours", fail) if "hours" in entry else DEFAULT_HOURS,
                closures=_closures(entry.get("closures", []), f"{where}.closures", fail),
                timezone=(
                    _timezone(entry["timezone"], f"{where}.timezone", fail)
                    if "timezone" in entry
                    else default_tz
                ),
                holiday_state=state,
                languages=(
                    _languages(entry["languages"], f"{where}.languages", fail)
                    if "languages" in entry
                    else default_languages
                ),
                handling_minutes=float(handling),
                holidays=calendars[state],
            )
        )
    return OfficeDirectory(offices)


OPTIONAL_NAME_LANGUAGES = ("fr", "it", "pl", "tr", "ku", "ar")
NAME_KEYS = tuple(f"name_{lang}" for lang in ("de", "en", *OPTIONAL_NAME_LANGUAGES))


def read_names(entry: Mapping[str, Any], path: str, fail: Any) -> dict[str, str]:
    """`name_de` and `name_en` of a configuration table (an office, a service): both required; the names in
    the other citizen languages (`name_fr` … `name_ar`) optional — where one is missing, the German name
    shows (an office's German name is what the citizen meets at the door)."""
    names = {}
    for lang in ("de", "en", *OPTIONAL_NAME_LANGUAGES):
        value = entry.get(f"name_{lang}")
        if value is None and lang in OPTIONAL_NAME_LANGUAGES:
            continue
        if not isinstance(value, str) or not value.strip():
            raise fail(
                f"{path}.name_{lang}",
                "required, a non-empty string" if lang in ("de", "en") else "a non-empty string",
            )
        names[lang] = value.strip()
    return names


def _timezone(value: Any, path: str, fail: Any) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise fail(path, f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None


def _state(value: Any, path: str, fail: Any) -> str | None:
    if value in ("", None, False):
        return None
    if not isinstance(value, str) or value not in holidays.Germany.subdivisions:
        states = ", ".join(s for s in holidays.Germany.subdivisions if len(s) == 2)
        raise fail(path, f'unknown federal state {value!r}; one of {states}, or "" for none')
    return value


def _languages(value: Any, path: str, fail: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise fail(path, 'a non-empty list of language codes such as ["de", "en"]')
    for code in value:
        if not isinstance(code, str) or not LANGUAGE_CODE.match(code):
            raise fail(path, f"{code!r} is not a language code (2–3 lowercase letters)")
    return tuple(dict.fromkeys(value))


def _hours(value: Any, path: str, fail: Any) -> tuple[tuple[Interval, ...], ...]:
    if not isinstance(value, dict):
        raise fail(path, 'a table such as { mon = "08:00-17:00" }')
    return parse_week(value, path, fail)


def parse_week(
    value: dict, path: str, fail: Any, max_per_day: int | None = None
) -> tuple[tuple[Interval, ...], ...]:
    """{"mon": "08:00-12:00" or a list of them, …} → seven tuples of sorted, non-overlapping intervals;
    `fail(where, problem)` builds the error. Office hours and advisors' weekly availability share it."""
    week: list[tuple[Interval, ...]] = [()] * 7
    for day, spec in value.items():
        if day not in WEEKDAYS:
            raise fail(f"{path}.{day}", f"unknown weekday; use {', '.join(WEEKDAYS)}")
        items = [spec] if isinstance(spec, str) else spec
        if not isinstance(items, list) or (max_per_day is not None and len(items) > max_per_day):
            raise fail(f"{path}.{day}", '"HH:MM-HH:MM" or a list of them')
        intervals = []
        for item in items:
            m = _INTERVAL.match(item) if isinstance(item, str) else None
            if not m:
                raise fail(f"{path}.{day}", f"{str(item)[:20]!r} is not HH:MM-HH:MM")
            start, end = time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))
            if start >= end:
                raise fail(f"{path}.{day}", f"{item!r} ends before it starts")
            intervals.append((start, end))
        intervals.sort()
        for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
            if start < end:
                raise fail(f"{path}.{day}", "intervals overlap")
        week[WEEKDAYS.index(day)] = tuple(intervals)
    return tuple(week)


def read_toml(path: Path) -> dict[str, Any]:
    """A configuration file's table; OfficeConfigError naming the file when it cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OfficeConfigError(str(path), "-", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise OfficeConfigError(str(path), "-", f"not valid TOML: {exc}") from None


def _closures(value: Any, path: str, fail: Any) -> tuple[Closure, ...]:
    if not isinstance(value, list):
        raise fail(path, "a list of dates or date ranges")
    closures = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        reason = ""
        if isinstance(item, datetime):
            raise fail(where, "a date without a time of day")
        if isinstance(item, date):
            first = last = item
        elif isinstance(item, str):
            m = _DAY_RANGE.match(item)
            try:
                if not m:
                    raise ValueError
                first = date.fromisoformat(m[1])
                last = date.fromisoformat(m[2]) if m[2] else first
            except ValueError:
                raise fail(where, f"{item!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from None
        elif isinstance(item, dict):
            first, last, reason = item.get("from"), item.get("to", item.get("from")), item.get("reason", "")
            if not _is_day(first) or not _is_day(last) or not isinstance(reason, str):
                raise fail(where, '{ from = YYYY-MM-DD, to = YYYY-MM-DD, reason = "..." } with TOML dates')
            unknown = set(item) - {"from", "to", "reason"}
            if unknown:
                raise fail(f"{where}.{sorted(unknown)[0]}", "unknown setting")
        else:
            raise fail(where, 'a date, a "YYYY-MM-DD..YYYY-MM-DD" string or a { from, to } table')
        if last < first:
            raise fail(where, "the range ends before it starts")
        closures.append(Closure(first, last, reason))
    return tuple(closures)


def _is_day(value: Any) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)
