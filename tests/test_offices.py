"""Offices from TOML: the demo file, defaults, and errors that name the file and the field."""

from __future__ import annotations

from datetime import date, time

import pytest

from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import DEFAULT_HOURS, OfficeConfigError, demo_offices_path, load_offices


def test_demo_file_has_the_four_offices():
    offices = load_offices()
    assert [o.id for o in offices] == ["vhs", "familienbuero", "buergertelefon", "standesamt"]
    fb = offices.require("familienbuero")
    assert fb.name("de") == "Familienbüro" and fb.name("en") == "Family Office"
    assert fb.name("tr") == "Aile bürosu (Familienbüro)"  # name_tr, the German name beside it
    assert fb.name("xx") == "Familienbüro"  # German when there is no name in that language
    assert fb.hours == DEFAULT_HOURS
    assert fb.hours[0] == ((time(8), time(17)),) and fb.hours[4] == ((time(8), time(13)),)
    assert fb.hours[5] == fb.hours[6] == ()
    assert str(fb.timezone) == "Europe/Berlin" and fb.holiday_state == "NW"
    assert fb.closed_reason(date(2026, 12, 28)) == "Betriebsferien"
    assert offices.require("standesamt").languages == ("de", "en")
    assert offices.require("standesamt").hours[0] == ((time(8), time(12)), (time(13), time(16)))
    assert "vhs" in offices and "nope" not in offices and len(offices) == 4


def test_demo_file_is_package_data():
    assert demo_offices_path().name == "offices.toml" and demo_offices_path().exists()


def test_unknown_office_is_a_domain_error():
    with pytest.raises(QueueError) as err:
        load_offices().require("rathaus")
    assert err.value.code == "unknown_office" and err.value.status == 404


def test_holiday_state_override_and_none(tmp_path):
    path = tmp_path / "o.toml"
    path.write_text('holiday_state = "BY"\n[offices.a]\nname_de = "A"\nname_en = "A"\n')
    assert load_offices(path).require("a").closed_reason(date(2026, 1, 6)) == "Heilige Drei Könige"
    # NW has no Epiphany holiday; the override (e.g. SPRECHSTUNDE_HOLIDAY_STATE) wins over the file.
    assert load_offices(path, holiday_state="NW").require("a").closed_reason(date(2026, 1, 6)) is None
    assert load_offices(path, holiday_state="").require("a").closed_reason(date(2026, 1, 1)) is None


BASE = '[offices.vhs]\nname_de = "VHS"\nname_en = "VHS"\n'


@pytest.mark.parametrize(
    ("toml", "field", "problem"),
    [
        ("", "offices", "at least one"),
        ('[offices."VHS!"]\nname_de = "x"\nname_en = "x"\n', "offices.VHS!", "office id"),
        ('[offices.vhs]\nname_en = "VHS"\n', "offices.vhs.name_de", "required"),
        (BASE + "colour = 1\n", "offices.vhs.colour", "unknown setting"),
        ('timezone = "Mars/Olympus"\n' + BASE, "timezone", "unknown time zone"),
        ('holiday_state = "XX"\n' + BASE, "holiday_state", "unknown federal state"),
        (BASE + 'languages = ["Deutsch"]\n', "offices.vhs.languages", "not a language code"),
        (BASE + "handling_minutes = 0\n", "offices.vhs.handling_minutes", "between 0 and 480"),
        (
            BASE + '[offices.vhs.hours]\nmonday = "08:00-12:00"\n',
            "offices.vhs.hours.monday",
            "unknown weekday",
        ),
        (BASE + '[offices.vhs.hours]\nmon = "8-12"\n', "offices.vhs.hours.mon", "not HH:MM-HH:MM"),
        (BASE + '[offices.vhs.hours]\nmon = "12:00-08:00"\n', "offices.vhs.hours.mon", "ends before"),
        (
            BASE + '[offices.vhs.hours]\nmon = ["08:00-12:00", "11:00-13:00"]\n',
            "offices.vhs.hours.mon",
            "overlap",
        ),
        (BASE + 'closures = ["2026-13-01"]\n', "offices.vhs.closures[0]", "not YYYY-MM-DD"),
        (BASE + 'closures = ["2026-12-31..2026-12-24"]\n', "offices.vhs.closures[0]", "ends before"),
        (BASE + "closures = [2026-12-24T10:00:00]\n", "offices.vhs.closures[0]", "without a time"),
        (
            BASE + "closures = [{ from = 2026-12-24, until = 2026-12-31 }]\n",
            "offices.vhs.closures[0].until",
            "unknown",
        ),
        ("offices = [1", "-", "not valid TOML"),
    ],
)
def test_errors_name_file_and_field(tmp_path, toml, field, problem):
    path = tmp_path / "offices.toml"
    path.write_text(toml)
    with pytest.raises(OfficeConfigError) as err:
        load_offices(path)
    assert err.value.field == field
    assert problem in err.value.problem
    assert str(err.value).startswith(f"{path}: {field}: ")


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(OfficeConfigError, match="cannot read") as err:
        load_offices(tmp_path / "missing.toml")
    assert str(tmp_path / "missing.toml") in str(err.value)


def test_closure_forms(tmp_path):
    path = tmp_path / "o.toml"
    path.write_text(
        BASE
        + 'closures = [2026-05-15, "2026-08-03..2026-08-07", { from = 2026-12-24, reason = "Heiligabend" }]\n'
    )
    vhs = load_offices(path).require("vhs")
    assert vhs.closed_reason(date(2026, 5, 15)) == "closure"
    assert vhs.closed_reason(date(2026, 8, 5)) == "closure" and vhs.closed_reason(date(2026, 8, 8)) is None
    assert vhs.closed_reason(date(2026, 12, 24)) == "Heiligabend"
