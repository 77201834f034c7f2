"""Routing: which advisor may serve which waiting citizen, and who is online to do so.

An entry is served by advisors (or office leads) of its office who speak its language. The queue keeps
one lane per office, language and kind (appointment or walk-in), so an advisor's claim looks only at the
lanes they can serve and the store's atomic claim does the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from sprechstunde.clock import Now
from sprechstunde.rooms.offices import OfficeDirectory
from sprechstunde.rooms.staff import SERVING_ROLES, StaffMember
from sprechstunde.store.port import Store

WALK_IN = "walk-in"
APPOINTMENT = "appointment"
PRESENCE_KIND = "advisor-online"
# The console renews presence at least every 30 s; a closed laptop drops out after this.
PRESENCE_TTL = 90.0


class Routable(Protocol):
    office: str
    language: str


def lane(office: str, language: str, kind: str = WALK_IN) -> str:
    """The queue lane of entries of one office, language and kind."""
    return f"{office}:{language}:{kind}"


def may_serve(member: StaffMember) -> bool:
    """Whether the account serves citizens at all (advisors and leads, not admins or locked accounts)."""
    return not member.disabled and member.role in SERVING_ROLES


def can_serve(member: StaffMember, entry: Routable) -> bool:
    """Whether `member` may take `entry`: same office, speaks its language, a serving role."""
    return may_serve(member) and entry.office in member.offices and entry.language in member.languages


def advisor_lanes(member: StaffMember, offices: OfficeDirectory, kind: str = WALK_IN) -> list[str]:
    """Every lane of `kind` the member may claim from, restricted to configured offices and languages."""
    if not may_serve(member):
        return []
    lanes = []
    for office_id in member.offices:
        office = offices.get(office_id)
        if office is None:
            continue
        lanes += [lane(office.id, code, kind) for code in member.languages if code in office.languages]
    return lanes


@dataclass(frozen=True)
class OnlineAdvisor:
    username: str
    offices: tuple[str, ...]
    languages: tuple[str, ...]
    since: float


@dataclass(frozen=True)
class Availability:
    """Who is online for an office right now: the number who can serve `language`, and which
    languages the office can serve at all (so the UI can offer German or an appointment instead)."""

    office: str
    language: str
    advisors_online: int
    languages_online: tuple[str, ...]

    @property
    def language_available(self) -> bool:
        return self.advisors_online > 0


class AdvisorPresence:
    """Which serving staff have a console open, kept as expiring records in the shared store so that
    every process sees the same advisors."""

    def __init__(self, store: Store, clock: Now = time.time, ttl: float = PRESENCE_TTL) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl

    async def online(self, member: StaffMember) -> None:
        """Mark `member` online for the next `ttl` seconds; call again as a heartbeat."""
        if not may_serve(member):
            return
        previous = await self._store.get(PRESENCE_KIND, member.username)
        since = previous["since"] if previous else self._clock()
        record = {
            "username": member.username,
            "offices": list(member.offices),
            "languages": list(member.languages),
            "since": since,
        }
        await self._store.put(PRESENCE_KIND, member.username, record, ttl=self._ttl)

    async def offline(self, username: str) -> None:
        await self._store.delete(PRESENCE_KIND, username)

    async def advisors(self) -> list[OnlineAdvisor]:
        return [
            OnlineAdvisor(r["username"], tuple(r["offices"]), tuple(r["languages"]), r["since"])
            for _, r in await self._store.scan(PRESENCE_KIND)
        ]

    async def availability(self, office: str, language: str) -> Availability:
        online = [a for a in await self.advisors() if office in a.offices]
        return Availability(
            office=office,
            language=language,
            advisors_online=sum(1 for a in online if language in a.languages),
            languages_online=tuple(sorted({code for a in online for code in a.languages})),
        )
