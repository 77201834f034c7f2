"""`sprechstunde availability show|set NAME`: advisors' weekly pattern and absences from the command
line (the same validation as PUT /api/staff/availability), and the `--smtp-*`/`--services` options
of `serve`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.scheduling.availability import AvailabilityBook, parse_availability
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.mail import SECURITY
from sprechstunde.store.port import Store
from sprechstunde.web.core.config import env


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--services",
        type=Path,
        default=Path(env("SERVICES")) if env("SERVICES") else None,
        metavar="FILE",
        help="bookable services per office (TOML); default: the demo file scheduling/services.toml "
        "[SPRECHSTUNDE_SERVICES]",
    )
    serve.add_argument(
        "--smtp-host",
        default=env("SMTP_HOST"),
        help="SMTP server for booking confirmations and reminders; without it no mail is sent "
        "[SPRECHSTUNDE_SMTP_HOST]",
    )
    serve.add_argument(
        "--smtp-port",
        type=int,
        default=int(env("SMTP_PORT", "587") or 587),
        help="[SPRECHSTUNDE_SMTP_PORT, 587]",
    )
    serve.add_argument("--smtp-user", default=env("SMTP_USER"), help="SMTP login [SPRECHSTUNDE_SMTP_USER]")
    serve.add_argument(
        "--smtp-password",
        default=env("SMTP_PASSWORD"),
        help="SMTP password; prefer the environment variable [SPRECHSTUNDE_SMTP_PASSWORD]",
    )
    serve.add_argument(
        "--smtp-from",
        default=env("SMTP_FROM", "Sprechstunde <termine@localhost>"),
        help="sender address of booking mails [SPRECHSTUNDE_SMTP_FROM]",
    )
    serve.add_argument(
        "--smtp-security",
        choices=SECURITY,
        default=env("SMTP_SECURITY", "starttls"),
        help="starttls (port 587), tls (port 465) or none (a local relay) "
        "[SPRECHSTUNDE_SMTP_SECURITY, starttls]",
    )


def serve_config(args: argparse.Namespace) -> dict[str, Any]:
    """The Config fields of these options."""
    return {
        "services_path": args.services,
        "smtp_host": args.smtp_host,
        "smtp_port": args.smtp_port,
        "smtp_username": args.smtp_user,
        "smtp_password": args.smtp_password,
        "smtp_sender": args.smtp_from,
        "smtp_security": args.smtp_security,
    }


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
