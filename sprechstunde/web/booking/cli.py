"""`sprechstunde availability show|set NAME`: advisors' weekly pattern and absences from the command
line (the same validation as PUT /api/staff/availability). The `--smtp-*`/`--services` options of
`serve` are settings declared on Config (web/core/config.py)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.scheduling.availability import AvailabilityBook, parse_availability
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.store.port import Store


def add_parser(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    availability = commands.add_parser("availability", help="when an advisor takes appointments")
    sub = availability.add_subparsers(dest="availability_command", required=True)
    show = sub.add_parser("show", help="print the weekly pattern and absences as JSON")
    common(show)
    show.add_argument("name", help="username")
    change = sub.add_parser("set", help="replace the weekly pattern and absences")
    common(change)
    change.add_argument("name", help="username")
    change.add_argument(
        "--day",
        action="append",
        default=[],
        metavar="DAY=HH:MM-HH:MM[,HH:MM-HH:MM]",
        help="e.g. mon=08:00-12:00,13:00-16:00; repeatable; days left out take no appointments",
    )
    change.add_argument(
        "--absence",
        action="append",
        default=[],
        metavar="YYYY-MM-DD[..YYYY-MM-DD]",
        help="days off (inclusive), repeatable",
    )


async def run(args: argparse.Namespace, store: Store) -> int:
    if await StaffDirectory(store).get(args.name) is None:
        print(f"error: there is no user {args.name!r}")
        return 1
    book = AvailabilityBook(store)
    if args.availability_command == "show":
        found = await book.get(args.name)
        print(json.dumps(found.as_json() if found else {"username": args.name, "weekly": {}, "absences": []}))
        return 0
    weekly: dict[str, list[str]] = {}
    for item in args.day:
        day, _, spec = item.partition("=")
        weekly.setdefault(day.strip(), []).extend(part.strip() for part in spec.split(",") if part.strip())
    absences = []
    for item in args.absence:
        first, _, last = item.partition("..")
        absences.append({"from": first.strip(), "to": (last or first).strip()})
    try:
        saved = await book.set(parse_availability(args.name, {"weekly": weekly, "absences": absences}))
    except BookingError as exc:
        print(f"error: {exc.message}")
        return 2
    print(json.dumps(saved.as_json()))
    return 0
