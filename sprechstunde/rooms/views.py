"""The waiting room as JSON: what the citizen's waiting page and the advisor's console are shown (over
their sockets, docs/protocol.md "Waiting room", and in the pages and API answers that show the same).

Domain views, not transport: signaling/waiting.py only carries them to the browsers. Every view is built
from the domain's objects and the one clock's `now`; none names an advisor, and the staff-only hand-over
note appears only where `staff=True` asks for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sprechstunde.l10n import weekday_abbreviations
from sprechstunde.rooms import hours
from sprechstunde.rooms.entries import QueueEntry, WaitStatus
from sprechstunde.rooms.offices import WEEKDAYS, Office, OfficeDirectory
from sprechstunde.rooms.staff import StaffMember


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _hhmm(interval: tuple) -> str:
    start, end = interval
    return f"{start:%H:%M}–{end:%H:%M}"


def office_hours(office: Office) -> list[dict[str, Any]]:
    return [
        {"day": day, "intervals": [_hhmm(i) for i in intervals]}
        for day, intervals in zip(WEEKDAYS, office.hours, strict=True)
    ]


def hours_text(office: Office, lang: str = "de") -> str:
    """One line such as "Mo 08:00–17:00 · … · Fr 08:00–13:00" (closed days left out)."""
    names = list(weekday_abbreviations(lang).values())  # CLDR, in the page's language
    return " · ".join(
        f"{names[i]} {', '.join(_hhmm(x) for x in intervals)}"
        for i, intervals in enumerate(office.hours)
        if intervals
    )


def office_json(office: Office, now: float, lang: str | None = None) -> dict[str, Any]:
    """Open now, next opening, closes at; with `lang` the name in it, else both names."""
    moment = datetime.fromtimestamp(now, UTC)
    open_now = hours.is_open(office, moment)
    opening = None if open_now else hours.next_opening(office, moment)
    closes = hours.closes_at(office, moment) if open_now else None
    view: dict[str, Any] = {"id": office.id}
    if lang is None:
        view["names"] = {"de": office.name("de"), "en": office.name("en")}
        view["languages"] = list(office.languages)
    else:
        view["name"] = office.name(lang)
    view |= {
        "open_now": open_now,
        "next_opening": opening.isoformat() if opening else None,
        "closes_at": closes.astimezone(office.timezone).isoformat() if closes else None,
    }
    return view


def entry_json(
    entry: QueueEntry, offices: OfficeDirectory, now: float, transcript: bool = True, staff: bool = False
) -> dict[str, Any]:
    """What the console (and the waiting page) shows of an entry; never the advisor's name.

    `note` is the citizen's own. Staff-only fields (the colleagues' hand-over note) are added only with
    `staff=True`, so a view made for the citizen cannot carry them by accident.
    """
    office = offices.get(entry.office)
    view: dict[str, Any] = {
        "entry_id": entry.entry_id,
        "office": entry.office,
        "office_name": office.name("de") if office else entry.office,
        "language": entry.language,
        "topic": entry.topic,
        "note": entry.note,
        "enqueued_at": _iso(entry.enqueued_at),
        "waited_seconds": max(0, round(now - entry.enqueued_at)),
        "appointment": None
        if entry.appointment_at is None
        else {"starts_at": _iso(entry.appointment_at), "booking_id": entry.booking_id},
        "transferred_from": list(entry.transferred_from),
        "channel": entry.channel,  # "video" or "phone": the console marks callers
    }
    if transcript:
        view["transcript"] = [dict(m) for m in entry.transcript]
    if staff:
        view["handover_note"] = entry.handover_note
    return view


# --- socket messages ---------------------------------------------------------------------------------


def queue_status(status: WaitStatus, entry: QueueEntry, office: Office | None, now: float, lang: str) -> dict:
    """`queue-status`: where a waiting citizen stands, their note, and their office's hours now."""
    return {
        "type": "queue-status",
        **status.as_json(),
        "note": entry.note,
        "office": office_json(office, now, lang) if office else {"id": entry.office},
    }


def admitted(room_id: str, join_token: str) -> dict[str, Any]:
    """`admitted`: an advisor called the citizen into `room_id`; the page joins with the token."""
    return {
        "type": "admitted",
        "room_id": room_id,
        "join_token": join_token,
        "join_url": f"/join/{join_token}",
    }


def removed(reason: str) -> dict[str, Any]:
    """`removed`: the place in line is gone (left, done, abandoned)."""
    return {"type": "removed", "reason": reason}


def console_queue(
    member: StaffMember,
    advisors_online: int,
    entries: Iterable[QueueEntry],
    offices: OfficeDirectory,
    now: float,
) -> dict[str, Any]:
    """`queue`: the console's list of citizens `member` may serve, in the order they will be served."""
    return {
        "type": "queue",
        "advisors_online": advisors_online,
        "you": {
            "username": member.username,
            "offices": list(member.offices),
            "languages": list(member.languages),
        },
        "entries": [entry_json(e, offices, now, staff=True) for e in entries],
    }


def claimed(
    request_id: Any, room_id: str, advisor_url: str, entry: QueueEntry, offices: OfficeDirectory, now: float
) -> dict[str, Any]:
    """`claimed`: the answer to the console's `next`/`claim`: the room to go to and whom it is for."""
    return {
        "type": "claimed",
        "id": request_id,
        "room_id": room_id,
        "advisor_url": advisor_url,
        "entry": entry_json(entry, offices, now, staff=True),
    }
