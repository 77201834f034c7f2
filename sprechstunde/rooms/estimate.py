"""Who is served when: the waiting page's place in line and estimate, computed by playing the queue's own
claiming rule forward (issue 17, item 7).

The figures a citizen sees must match what happens. So instead of "median × position ÷ advisors online"
the forecast replays `QueueService.claim_next` (rooms/queue.py) for the advisors there are:

* every advisor who can serve (online with a console, or in a consultation they claimed) is a `Desk`
  that is free now (idle) or when its running consultation is expected to end (started + the office's
  median handling time, at least `MIN_REMAINING` from now: it is still running);
* the desk that is free first claims what `claim_next` would hand it at that moment: a due appointment
  booked with that advisor, else the due appointment first in line, else the walk-in first in line, all
  from its lanes (office × language × kind); appointments are due `appointment_lead` seconds before their
  start (their score). A desk with nothing to claim waits for the next appointment of its lanes to fall
  due, or has no more work;
* the claimed citizen starts then, and the desk is busy for the office's median handling time.

A citizen's `position` is 1 + the citizens claimed before them by desks that could have served them too,
`starts_at` when a desk claims them, and `advisor_free` says that an idle advisor takes them at once
("gleich"). Only one citizen per free desk can be next, and it is exactly the one `claim_next` picks: an
appointment holder who came early is not told "next" while a walk-in will go first. When no desk can
serve a citizen there is no time (None); the position is then the one an advisor for their office and
language would see (a desk assumed for the purpose), and the page says that nobody is online.

Pure functions over plain values; QueueService.status gathers them from the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sprechstunde.rooms.routing import APPOINTMENT, WALK_IN, lane

# A consultation that runs longer than the median still runs: its advisor is not free before this.
MIN_REMAINING = 60.0


@dataclass(frozen=True)
class Place:
    """A waiting citizen as the claim sees them: queue key, lane, score (arrival, or an appointment's
    due time), office and, for an appointment, the advisor it was booked with."""

    key: str
    lane: str
    score: float
    office: str
    kind: str = WALK_IN
    booked_with: str | None = None


@dataclass(frozen=True)
class Desk:
    """An advisor who can take citizens: the lanes they claim from and when they are free."""

    username: str
    lanes: frozenset[str]
    free_at: float


@dataclass(frozen=True)
class Turn:
    """When a citizen's turn comes (see the module docstring)."""

    position: int
    starts_at: float | None
    advisor_free: bool = False


def lane_parts(name: str) -> tuple[str, str, str]:
    """(office, language, kind) of a lane name (the inverse of routing.lane)."""
    office, language, kind = name.rsplit(":", 2)
    return office, language, kind


def busy_until(started_at: float, handling: float, now: float) -> float:
    """When a desk whose consultation began at `started_at` is expected to be free."""
    return max(started_at + handling, now + MIN_REMAINING)


def _pick(desk: Desk, waiting: list[Place], at: float) -> Place | None:
    """What `claim_next` hands `desk` at time `at` (`waiting` is ordered by score, key)."""
    due = [p for p in waiting if p.kind == APPOINTMENT and p.lane in desk.lanes and p.score <= at]
    for place in due:
        if place.booked_with == desk.username:
            return place
    if due:
        return due[0]
    return next((p for p in waiting if p.kind == WALK_IN and p.lane in desk.lanes), None)


def _replay(
    places: Iterable[Place], desks: Iterable[Desk], handling: Mapping[str, float], until: str | None
) -> list[tuple[Place, Desk, float]]:
    """The claims in the order they happen: (place, desk, when); stops once `until` is claimed."""
    waiting = sorted(places, key=lambda p: (p.score, p.key))
    by_name = {d.username: d for d in desks}
    free = {d.username: d.free_at for d in by_name.values()}
    claims: list[tuple[Place, Desk, float]] = []
    while waiting and free:
        name = min(free, key=lambda n: (free[n], n))
        desk, at = by_name[name], free[name]
        place = _pick(desk, waiting, at)
        if place is None:
            # nothing to claim now: the next appointment of its lanes to fall due, or no more work
            later = [p.score for p in waiting if p.lane in desk.lanes and p.score > at]
            if later:
                free[name] = min(later)
            else:
                del free[name]
            continue
        waiting.remove(place)
        claims.append((place, desk, at))
        free[name] = at + handling[place.office]
        if place.key == until:
            break
    return claims


def turn(
    target: Place,
    places: Iterable[Place],
    desks: Iterable[Desk],
    handling: Mapping[str, float],
    now: float,
) -> Turn:
    """The turn of `target` (one of `places`, the citizens waiting now) with these `desks`.

    `handling`: the median handling seconds of every office in `places`."""
    places = list(places)
    claims = _replay(places, desks, handling, target.key)
    for index, (place, _, at) in enumerate(claims):
        if place.key == target.key:
            before = sum(1 for _p, other, _t in claims[:index] if target.lane in other.lanes)
            return Turn(before + 1, at, advisor_free=at <= now)
    # Nobody there serves it: its place as an advisor of its office and language would take them.
    office, language, _ = lane_parts(target.lane)
    assumed = Desk("", frozenset({lane(office, language, APPOINTMENT), lane(office, language, WALK_IN)}), now)
    claims = _replay([p for p in places if p.lane in assumed.lanes], [assumed], handling, target.key)
    return Turn(next(i for i, (p, _, _) in enumerate(claims) if p.key == target.key) + 1, None)
