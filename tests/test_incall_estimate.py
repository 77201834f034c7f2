"""Issue 17, item 7: the waiting estimate follows the order in which advisors claim (rooms/estimate.py).

The scenarios of the issue: position 1 with an idle advisor online is not told "etwa 12 Minuten"; of an
appointment holder who came early and a walk-in, exactly one is told "next" and that one is claimed next;
an advisor in a consultation (console closed) counts with the time left; and over a whole random queue the
forecast names who `claim_next` hands out, when.
"""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from sprechstunde.rooms.estimate import Desk, Place, turn
from sprechstunde.rooms.queue import Appointment
from sprechstunde.rooms.routing import APPOINTMENT, WALK_IN, lane
from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.store import SQLiteStore
from tests.test_queue import BERLIN, Clock, make_service, staff, walk_in

TWELVE = 12 * 60  # the VHS's configured handling time (no consultations recorded yet)


@pytest.fixture
def clock() -> Clock:
    return Clock()  # Tuesday 10:00 in Berlin: the VHS is open


@pytest.fixture
async def store(tmp_path, clock):
    s = SQLiteStore(tmp_path / "q.sqlite3", clock=clock)
    yield s
    await s.close()


@pytest.fixture
def queue(store, clock):
    return make_service(store, clock)


async def test_position_one_with_an_idle_advisor_is_taken_at_once(queue):
    first = (await walk_in(queue)).entry.entry_id
    await queue.advisor_online(staff("anna"))
    status = await queue.status(first)
    assert (status.position, status.estimated_wait, status.advisor_free) == (1, 0.0, True)
    assert status.as_json()["estimated_wait_seconds"] == 0  # not "etwa 12 Minuten"
    assert status.as_json()["advisor_free"] is True


async def test_early_appointment_and_walk_in_exactly_one_is_next_and_it_is_claimed(queue, clock):
    at_10_30 = datetime(2026, 3, 10, 10, 30, tzinfo=BERLIN)  # due from 10:25; now is 10:00
    booked = (await queue.enqueue("vhs", "de", "Termin", appointment=Appointment(at_10_30))).entry.entry_id
    clock.now += 60
    walker = (await walk_in(queue)).entry.entry_id
    # nobody online yet: still only one of them is first in line
    statuses = {e: await queue.status(e) for e in (booked, walker)}
    assert sorted(s.position for s in statuses.values()) == [1, 2]
    assert statuses[walker].position == 1 and statuses[walker].estimated_wait is None
    anna = staff("anna")
    await queue.advisor_online(anna)
    statuses = {e: await queue.status(e) for e in (booked, walker)}
    nexts = [e for e, s in statuses.items() if s.position == 1]
    assert nexts == [walker]
    assert statuses[walker].advisor_free and statuses[walker].estimated_wait == 0
    # the appointment holder: second, when anna is done with the walk-in (12 min) or the slot falls due
    # (25 min from 10:00, 24 from now): whichever is later
    assert (statuses[booked].position, statuses[booked].estimated_wait) == (2, 24 * 60)
    assert not statuses[booked].advisor_free
    assert (await queue.claim_next(anna)).entry.entry_id == walker


async def test_a_due_appointment_is_next_before_an_earlier_walk_in(queue, clock):
    walker = (await walk_in(queue)).entry.entry_id
    at_10_03 = datetime(2026, 3, 10, 10, 3, tzinfo=BERLIN)  # due already (5 minutes' lead)
    booked = (await queue.enqueue("vhs", "de", "Termin", appointment=Appointment(at_10_03))).entry.entry_id
    anna = staff("anna")
    await queue.advisor_online(anna)
    assert (await queue.status(booked)).position == 1 and (await queue.status(walker)).position == 2
    assert (await queue.status(walker)).estimated_wait == TWELVE
    assert (await queue.claim_next(anna)).entry.entry_id == booked


async def test_an_advisor_in_a_consultation_counts_with_the_time_left(queue, store, clock):
    anna = await StaffDirectory(store, clock).add("anna", "ein-langes-passwort-1", "advisor", ["vhs"])
    await walk_in(queue)
    await queue.advisor_online(anna)
    await queue.claim_next(anna)
    await queue.advisor_offline("anna")  # the console closes as she goes into the call
    clock.now += 5 * 60
    waiting = (await walk_in(queue)).entry.entry_id
    status = await queue.status(waiting)
    assert status.availability.advisors_online == 0 and status.advisors_busy == 1
    assert (status.position, status.estimated_wait, status.advisor_free) == (1, TWELVE - 5 * 60, False)
    # running over the usual time: still in the consultation, free in a minute at the earliest
    clock.now += 20 * 60
    status = await queue.status(waiting)
    assert (status.estimated_wait, status.advisor_free) == (60.0, False)


async def test_nobody_who_can_serve_gives_no_number(queue):
    entry = (await walk_in(queue, language="en")).entry.entry_id
    await queue.advisor_online(staff("ben", languages=("de",)))
    status = await queue.status(entry)
    assert (status.position, status.estimated_wait, status.advisors_busy) == (1, None, 0)
    assert status.as_json()["estimated_wait_seconds"] is None


async def test_the_booked_advisor_takes_their_appointment_first(queue, clock):
    at_10_02 = datetime(2026, 3, 10, 10, 2, tzinfo=BERLIN)
    theirs = Appointment(at_10_02, advisor="ben")
    first = (await queue.enqueue("vhs", "de", "A", appointment=Appointment(at_10_02))).entry.entry_id
    clock.now += 1
    for_ben = (await queue.enqueue("vhs", "de", "B", appointment=theirs)).entry.entry_id
    await queue.advisor_online(staff("ben"))
    assert (await queue.status(for_ben)).position == 1
    assert (await queue.status(first)).position == 2
    assert (await queue.claim_next(staff("ben"))).entry.entry_id == for_ben


def test_turn_replays_claims_across_lanes_and_desks():
    de, en = lane("vhs", "de", WALK_IN), lane("vhs", "en", WALK_IN)
    places = [Place("w1", de, 1.0, "vhs"), Place("w2", de, 2.0, "vhs"), Place("e1", en, 3.0, "vhs")]
    anna = Desk("anna", frozenset({de, en}), 100.0)
    ben = Desk("ben", frozenset({de}), 100.0)
    handling = {"vhs": 600.0}
    got = {p.key: turn(p, places, [anna, ben], handling, 100.0) for p in places}
    assert [(got[k].position, got[k].starts_at, got[k].advisor_free) for k in ("w1", "w2", "e1")] == [
        (1, 100.0, True),
        (2, 100.0, True),  # ben takes the second at once
        (2, 700.0, False),  # only anna speaks English: after her first
    ]
    # an appointment not yet due waits for its time even with a desk free
    soon = Place("a1", lane("vhs", "de", APPOINTMENT), 400.0, "vhs", APPOINTMENT)
    carl = Desk("carl", frozenset({soon.lane, de}), 100.0)
    alone = turn(soon, [soon], [carl], handling, 100.0)
    assert (alone.position, alone.starts_at, alone.advisor_free) == (1, 400.0, False)


async def test_the_forecast_names_who_claim_next_hands_out_and_when(queue, store, clock):
    """A random queue of walk-ins and appointments in two languages, two advisors: every claim happens
    when and to whom the forecast made at the start said, if consultations take the median time."""
    directory = StaffDirectory(store, clock)
    anna = await directory.add("anna", "ein-langes-passwort-1", "advisor", ["vhs"], ["de", "en"])
    ben = await directory.add("ben", "ein-langes-passwort-2", "advisor", ["vhs"], ["de"])
    rng = random.Random(17)
    start = clock.now
    for _ in range(9):
        language = rng.choice(["de", "de", "en"])
        if rng.random() < 0.3:
            moment = datetime.fromtimestamp(start + rng.randint(0, 40) * 60, BERLIN)
            await queue.enqueue("vhs", language, "Termin", appointment=Appointment(moment))
        else:
            await walk_in(queue, language=language)
        clock.now += 7
    for member in (anna, ben):
        await queue.advisor_online(member)
    now = clock.now
    waiting = [i.key for i in await store.queued("waiting-room")]
    forecast = {e: await queue.status(e) for e in waiting}
    expected = sorted((now + s.estimated_wait, e) for e, s in forecast.items())
    free = {"anna": now, "ben": now}
    happened = []
    while len(happened) < len(waiting):
        name = min(free, key=lambda n: (free[n], n))
        clock.now = free[name]
        member = anna if name == "anna" else ben
        await queue.advisor_online(member)
        consultation = await queue.claim_next(member)
        if consultation is None:  # nothing due for them yet: try again when the next falls due
            left = [s for s in expected if s[1] not in {h[1] for h in happened}]
            free[name] = min((t for t, _ in left if t > clock.now), default=float("inf"))
            if free[name] == float("inf"):
                del free[name]
            continue
        happened.append((clock.now, consultation.entry.entry_id))
        free[name] = clock.now + TWELVE
        clock.now += TWELVE
        await queue.finish(member, consultation.entry.entry_id, "resolved")
        clock.now = min(free.values())
    assert sorted(happened) == expected
    assert all(forecast[e].position >= 1 for e in waiting)
