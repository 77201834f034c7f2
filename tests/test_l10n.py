"""Dates, times, numbers and language names from CLDR (sprechstunde/l10n.py): the house style the pages and
mails always had in German and English, CLDR's own formats elsewhere, and the explicit fallbacks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sprechstunde import l10n

BERLIN = ZoneInfo("Europe/Berlin")
TUESDAY = date(2027, 1, 12)
MORNING = datetime(2027, 1, 12, 8, 5, tzinfo=BERLIN)


def test_german_and_english_keep_the_house_style():
    assert l10n.day_text(TUESDAY, "de") == "Dienstag, 12. Januar 2027"
    assert l10n.day_text(TUESDAY, "en") == "Tuesday, 12 January 2027"
    assert l10n.month_text(date(2027, 3, 1), "de") == "März 2027"
    assert l10n.month_text(date(2027, 3, 1), "en") == "March 2027"
    assert l10n.time_text(MORNING, "de") == "08:05 Uhr" and l10n.time_text(MORNING, "en") == "08:05"
    assert l10n.datetime_text(MORNING, "de") == "12.01.2027, 08:05"
    assert l10n.datetime_text(MORNING, "en") == "2027-01-12 08:05"


def test_times_stay_on_the_wall_clock_of_the_moment():
    summer = datetime(2027, 7, 1, 23, 30, tzinfo=BERLIN)
    assert (
        l10n.time_text(summer, "de") == "23:30 Uhr"
        and l10n.datetime_text(summer, "de") == "01.07.2027, 23:30"
    )
    assert l10n.time_text(datetime(2027, 7, 1, 6, 0, tzinfo=UTC), "de") == "06:00 Uhr"


def test_other_languages_get_cldr_formats_kurmanji_included():
    assert l10n.day_text(TUESDAY, "fr") == "mardi 12 janvier 2027"
    assert l10n.month_text(TUESDAY, "pl") == "styczeń 2027"  # the stand-alone month name
    assert l10n.day_text(TUESDAY, "ku") == "sêşem, 12ê rêbendana 2027an"  # CLDR's Kurmanji, izafe forms
    assert l10n.month_text(TUESDAY, "ku") == "rêbendan 2027"  # a calendar heading: the plain month name
    assert l10n.weekday_abbreviations("ku")["tue"] == "sşm"
    assert l10n.time_text(MORNING, "ku") == "08:05"
    assert l10n.day_text(TUESDAY, "xx") == "Dienstag, 12. Januar 2027"  # unknown to CLDR: German


def test_weekday_abbreviations_are_the_calendar_heads():
    assert list(l10n.weekday_abbreviations("de").values()) == ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"]
    assert (
        l10n.weekday_abbreviations("en")["mon"] == "Mon" and l10n.weekday_abbreviations("en")["sun"] == "Sun"
    )


def test_numbers_use_the_languages_separators():
    assert l10n.decimal_text(4.5, "de") == "4,5" and l10n.decimal_text(4.5, "en") == "4.5"
    assert l10n.decimal_text(1234.25, "de", 2) == "1.234,25"
    assert (
        l10n.percent_text(0.948, "de") == "95\N{NO-BREAK SPACE}%" and l10n.percent_text(0.948, "en") == "95%"
    )


def test_language_names_are_endonyms_capitalised_as_list_entries():
    names = l10n.language_names(["de", "en", "fr", "it", "pl", "tr", "ar", "uk", "ru"])
    assert names == {
        "de": "Deutsch",
        "en": "English",
        "fr": "Français",
        "it": "Italiano",
        "pl": "Polski",
        "tr": "Türkçe",
        "ar": "العربية",
        "uk": "Українська",
        "ru": "Русский",
    }
    assert l10n.language_name("ku") == "Kurdî (kurmancî)"  # CLDR's Kurmanji name
    assert l10n.language_name("qq") == "qq"  # unknown: the code itself
