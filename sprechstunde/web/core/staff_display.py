"""How staff pages show offices, languages and moments (issue 17 item 10).

One rule for every staff page: a moment is shown on the wall clock of the office it belongs to (not the
browser's, not UTC), in the page's language; an office by its name and a language by its own name, never
by id; numbers with the language's decimal separator. Machine fields (the JSON API, the CSV's machine
variant) stay ISO and ids.

Where the server renders the text (console tickets and links, the statistics page, the consultation panel)
it formats here, with Babel (sprechstunde/l10n.py). Where a script renders a live list (the console's
queue, the appointments page) the page carries `office_labels` (names and IANA zones) and the script
formats with Intl.DateTimeFormat(lang, {timeZone: the office's zone}) (static/format.js `zonedTime`).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sprechstunde import l10n
from sprechstunde.rooms.offices import DEFAULT_TIMEZONE, OfficeDirectory


def office_name(offices: OfficeDirectory, office_id: str | None, lang: str) -> str:
    """The office's name in `lang`; the id itself for an office no longer configured, "–" for none."""
    if not office_id:
        return "–"
    office = offices.get(office_id)
    return office.name(lang) if office else office_id


def language_name(code: str | None) -> str:
    """A language by its own name ("Deutsch", "Türkçe"); "–" when none was given."""
    return l10n.language_name(code) if code else "–"


def office_moment(offices: OfficeDirectory, office_id: str | None, timestamp: float, lang: str) -> str:
    """A moment on the office's wall clock, as `lang` writes it: "05.12.2026, 10:35" / "2026-12-05 10:35"."""
    office = offices.get(office_id) if office_id else None
    zone = office.timezone if office else ZoneInfo(DEFAULT_TIMEZONE)
    return l10n.datetime_text(datetime.fromtimestamp(timestamp, zone), lang)


def office_labels(offices: OfficeDirectory, lang: str) -> dict[str, dict[str, str]]:
    """{office id: {"name", "time_zone"}} for a staff page's script (rendered as JSON into the page)."""
    return {o.id: {"name": o.name(lang), "time_zone": o.timezone.key} for o in offices}
