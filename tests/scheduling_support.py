"""A scheduling world for tests: SQLite store, offices, staff with availability, a movable clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sprechstunde.clock import Clock
from sprechstunde.rooms.offices import Interval, OfficeDirectory, make_office
from sprechstunde.rooms.queue import QueueService
from sprechstunde.rooms.service import RoomService
from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.scheduling.availability import parse_availability
from sprechstunde.scheduling.bookings import SchedulingService
from sprechstunde.scheduling.catalog import Service, ServiceCatalog
from sprechstunde.store import open_store
from sprechstunde.store.port import Store

BERLIN = ZoneInfo("Europe/Berlin")
PASSWORD = "richtig-langes-passwort"
SECRET = b"s" * 32
WORKDAY = ((time(8), time(17)),)
WEEK: tuple[tuple[Interval, ...], ...] = (WORKDAY, WORKDAY, WORKDAY, WORKDAY, ((time(8), time(13)),), (), ())
NIGHT = ((time(1), time(5)),)
# Open on Sundays at night too, so that slots across the clock changes (Sunday 02:00/03:00) exist.
WEEK_AND_SUNDAY_NIGHT = (*WEEK[:6], NIGHT)
FULL = {d: "00:00-23:59" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def at(text: str) -> datetime:
    """'2027-01-12 10:00' in Berlin."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


@dataclass
class World:
    store: Store
    scheduling: SchedulingService
    queue: QueueService
    staff: StaffDirectory
    clock: Clock
    offices: OfficeDirectory

    async def advisor(
        self, name: str, offices: tuple[str, ...] = ("vhs",), languages: tuple[str, ...] = ("de",), **pattern
    ):
        member = await self.staff.add(name, PASSWORD, "advisor", list(offices), list(languages))
        weekly = pattern.pop("weekly", FULL)
        await self.scheduling.availability.set(
            parse_availability(name, {"weekly": weekly, "absences": pattern.pop("absences", [])})
        )
        return member


def build_world(path: Path, clock: Clock | None = None, store: Store | None = None) -> World:
    store = store or open_store(path / "test.sqlite3")
    offices = OfficeDirectory(
        [
            make_office("vhs", {"de": "Volkshochschule", "en": "Adult Education Centre"}, hours=WEEK),
            make_office("nacht", {"de": "Nachtschalter", "en": "Night desk"}, hours=WEEK_AND_SUNDAY_NIGHT),
        ]
    )
    catalog = ServiceCatalog(
        [
            Service("vhs", "beratung", {"de": "Beratung Weiterbildung", "en": "Advice"}, 30, 10, "both"),
            Service("vhs", "kurs", {"de": "Einstufung", "en": "Placement"}, 60, 0, "video"),
            Service("nacht", "stunde", {"de": "Stunde", "en": "Hour"}, 60, 0, "both"),
        ],
        {"vhs": "Am Markt 1"},
    )
    clock = clock or Clock()
    signer = TokenSigner(SECRET)
    staff = StaffDirectory(store)
    queue = QueueService(store, offices, signer, RoomService(store, signer), clock=clock)
    scheduling = SchedulingService(store, offices, catalog, staff, signer, queue, clock)
    return World(store, scheduling, queue, staff, clock, offices)
