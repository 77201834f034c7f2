"""Dates, times, numbers and language names as a reader of each language expects them, from CLDR (Babel).

No module keeps its own table of weekday, month or language names: the names come from CLDR. Where
the service has a house style that pages, mails and their tests rely on ("Dienstag, 12. Januar 2027",
"08:00 Uhr", "Tuesday, 12 January 2027", "2027-01-12 10:00" in English mail), `HOUSE_PATTERNS` gives the
CLDR pattern that writes it; every other language gets CLDR's own formats.

Kurmanji ("ku") dates come from CLDR too ("sêşem, 12ê rêbendana 2027an"); only its month heading has a
house pattern, the stand-alone name ("rêbendan 2027"), because CLDR's month-and-year skeleton uses the
izafe form that belongs inside a date ("rêbendana 2027an"). A language Babel does not know at all falls
back to German for dates and numbers and to its code for its name.

Here at the top of the package (not in web/) because domains format too: scheduling/mail.py writes the
appointment time into the confirmation mail.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_datetime,
    format_skeleton,
    format_time,
    get_datetime_format,
    get_day_names,
)
from babel.numbers import format_decimal, format_percent, get_decimal_symbol

DEFAULT_LANGUAGE = "de"  # the city's language; also what the UI falls back to
WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # as offices.toml names the days
HOUSE_PATTERNS: dict[str, dict[str, str]] = {
    "de": {"time": "HH:mm 'Uhr'", "short_day": "EEE, dd.MM.y"},
    "ku": {"month": "LLLL y"},
    "en": {
        "day": "EEEE, d MMMM y",
        "date": "d MMMM y",
        "time": "HH:mm",
        "datetime": "y-MM-dd HH:mm",
        "short_day": "EEE d MMM y",
    },
}


@cache
def _parse(lang: str) -> Locale | None:
    try:
        return Locale.parse(lang)
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def locale_for(lang: str) -> Locale:
    """The Babel locale that formats dates and numbers for `lang` (German for a language Babel lacks)."""
    return _parse(lang) or _parse(DEFAULT_LANGUAGE)  # type: ignore[return-value]


def _house(lang: str, kind: str) -> str | None:
    return HOUSE_PATTERNS.get(lang, {}).get(kind)


def day_text(day: date, lang: str) -> str:
    """A day with its weekday: "Dienstag, 12. Januar 2027" / "Tuesday, 12 January 2027"."""
    return format_date(day, _house(lang, "day") or "full", locale=locale_for(lang))


def date_text(day: date, lang: str) -> str:
    """A date without its weekday: "5. Dezember 2026" / "5 December 2026" / "5 ديسمبر 2026"."""
    return format_date(day, _house(lang, "date") or "long", locale=locale_for(lang))


def short_day_text(day: date, lang: str) -> str:
    """A day in a table row or a range: "Di., 24.11.2026" / "Tue 24 Nov 2026"."""
    pattern = _house(lang, "short_day")
    if pattern is not None:
        return format_date(day, pattern, locale=locale_for(lang))
    return format_skeleton("yMMddEEE", day, locale=locale_for(lang))


def month_text(month: date, lang: str) -> str:
    """A calendar month: "Januar 2027" / "January 2027" / "rêbendan 2027"."""
    pattern = _house(lang, "month")
    if pattern is not None:
        return format_date(month, pattern, locale=locale_for(lang))
    return format_skeleton("yMMMM", month, locale=locale_for(lang))


def time_text(moment: datetime, lang: str) -> str:
    """A time of day on the wall clock of `moment`: "08:00 Uhr" / "08:00"."""
    return format_time(moment, _house(lang, "time") or "short", tzinfo=moment.tzinfo, locale=locale_for(lang))


def datetime_text(moment: datetime, lang: str) -> str:
    """Date and time, short: "12.01.2027, 10:00" (CLDR's medium date with the short time) /
    "2027-01-12 10:00" in English."""
    pattern = _house(lang, "datetime")
    if pattern is None:
        loc = locale_for(lang)
        pattern = (
            str(get_datetime_format("medium", locale=loc))
            .replace("{1}", loc.date_formats["medium"].pattern)
            .replace("{0}", loc.time_formats["short"].pattern)
        )
    return format_datetime(moment, pattern, tzinfo=moment.tzinfo, locale=locale_for(lang))


def weekday_abbreviations(lang: str) -> dict[str, str]:
    """{"mon": "Mo", …} / {"mon": "Mon", …}: CLDR's stand-alone short names, for a calendar's column
    heads and opening hours ("Mo–Fr")."""
    names = get_day_names("abbreviated", context="stand-alone", locale=locale_for(lang))
    return {key: names[index] for index, key in enumerate(WEEKDAY_KEYS)}


def decimal_text(value: float, lang: str, digits: int = 1) -> str:
    """A number with `digits` decimals and the language's separators: "4,5" / "4.5"."""
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return format_decimal(value, pattern, locale=locale_for(lang))


def decimal_symbol(lang: str) -> str:
    """The language's decimal separator: "," in German, "." in English (a CSV for German Excel then
    separates its columns with ";")."""
    return get_decimal_symbol(locale_for(lang))


def percent_text(share: float, lang: str) -> str:
    """A share (0.95) as the language writes a percentage: "95 %" / "95%"."""
    return format_percent(share, locale=locale_for(lang))


@cache
def language_name(code: str) -> str:
    """A language's name in that language itself, as a list entry is capitalised ("Français",
    "Türkçe", "Kurdî (kurmancî)"); an unknown code stays the code."""
    loc = _parse(code)
    name = loc.get_display_name(loc) if loc is not None else None
    if not name:
        return code
    return name[:1].upper() + name[1:]


def language_names(codes: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{code: name in that language} for a select list."""
    return {code: language_name(code) for code in codes}
