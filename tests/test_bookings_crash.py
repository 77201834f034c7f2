"""Issue 15, finding 8: a process killed in the middle of a booking change must not leave an orphan seat
(an advisor's interval held for a booking that does not exist or is no longer booked — capacity lost for
good) nor a booking without its seat (a double booking waiting to happen).

The unit-level tests kill the process at every write: a store wrapper lets the first `k` writes through
and then raises `Killed` for every further call, as if the process had died there (no `except` or
`finally` gets to talk to the store any more). After each kill the data must be consistent. The
end-to-end test (`test_kill_9_during_booking_bursts_*`) does the same with a real server process and
`kill -9`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.server import ServerProcess
from sprechstunde.rooms import hours
from sprechstunde.rooms.offices import load_offices
from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.scheduling.availability import AvailabilityBook, parse_availability
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.records import (
    BOOKED,
    BOOKING_KIND,
    IDEMPOTENCY_KIND,
    NO_SHOW,
    SEATS_KIND,
    Booking,
)
from sprechstunde.store import RedisStore, open_store
from sprechstunde.store.port import Store
from sprechstunde.web.core.config import DATABASE_FILE, prepare_data_dir
from tests.scheduling_support import BERLIN, FULL, PASSWORD, at, build_world
from tests.test_store import REDIS_URL, redis_namespace

TUESDAY = date(2027, 1, 12)
WRITES = {"put", "create", "compare_and_set", "compare_and_set_many", "incr", "delete"}


class Killed(BaseException):
    """The process died here (BaseException: no `except Exception` in the code under test sees it)."""


class CrashingStore:
    """Delegates to a real store until it is armed; then lets `writes` writes through and dies."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.writes_left: int | None = None
        self.dead = False

    def arm(self, writes: int) -> None:
        self.writes_left = writes

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target) or name == "close":
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.dead:
                raise Killed(name)
            if name in WRITES and self.writes_left is not None:
                if self.writes_left == 0:
                    self.dead = True
                    raise Killed(name)
                self.writes_left -= 1
            return await target(*args, **kwargs)

        return call


async def check_consistent(store: Store) -> dict[str, Booking]:
    """Every seat interval belongs to a booking that holds it (booked or no-show) with the same advisor,
    day and times, and every such booking has exactly one seat interval."""
    bookings = {key: Booking(**record) for key, record in await store.scan(BOOKING_KIND)}
    seats: dict[str, tuple[str, float, float]] = {}
    for key, record in await store.scan(SEATS_KIND):
        for start, until, booking_id in record["busy"]:
            assert booking_id not in seats, f"two seats for {booking_id}"
            seats[booking_id] = (key, start, until)
    holding = {k: b for k, b in bookings.items() if b.status in (BOOKED, NO_SHOW)}
    orphans = sorted(set(seats) - set(holding))
    assert not orphans, f"orphan seats (capacity lost): {[seats[o] for o in orphans]}"
    unseated = sorted(set(holding) - set(seats))
    assert not unseated, f"bookings without a seat: {unseated}"
    for booking_id, booking in holding.items():
        day = datetime.fromtimestamp(booking.starts_at, BERLIN).date().isoformat()
        assert seats[booking_id] == (f"{booking.advisor}|{day}", booking.starts_at, booking.busy_until)
    return bookings


class Data:
    """Where a test's data lives: a SQLite file per name, or a Redis key prefix per name. `open(name)`
    is what a (re)started process does: a new handle on the same data."""

    def __init__(self, tmp_path: Path, redis_prefix: str | None) -> None:
        self.tmp_path = tmp_path
        self.redis_prefix = redis_prefix

    def open(self, name: str) -> Store:
        if self.redis_prefix is not None:
            return RedisStore(REDIS_URL, prefix=f"{self.redis_prefix}{name}:")
        (self.tmp_path / name).mkdir(parents=True, exist_ok=True)
        return open_store(self.tmp_path / name / "test.sqlite3")

    def world(self, name: str, clock=None):
        return build_world(self.tmp_path, clock, store=self.open(name))


@pytest.fixture(params=["embedded", "redis"])
async def data(request, tmp_path):
    if request.param == "embedded":
        yield Data(tmp_path, None)
        return
    async with redis_namespace() as prefix:
        yield Data(tmp_path, prefix)


async def _world(data: Data, name: str):
    crashing = CrashingStore(data.open(name))
    world = build_world(data.tmp_path, store=crashing)  # type: ignore[arg-type]
    world.clock.set(at("2027-01-04 12:00"))
    await world.advisor("anna")
    await world.advisor("bert")
    return world, crashing


async def book(world, when: str, **extra):
    body = {"name": "Erika Mustermann", "email": "erika@example.org", "consent": True} | extra
    return await world.scheduling.book("vhs", "beratung", "video", at(when).isoformat(), **body)


async def _each_crash_point(data: Data, prepare, operation, after=None) -> int:
    """Run `operation` once per crash point (after 0, 1, 2, … writes) until it gets through; after each
    kill, reopen the data as a restarted process would and check it. Returns the number of kills."""
    for writes in range(40):
        world, crashing = await _world(data, f"k{writes}")
        state = await prepare(world)
        crashing.arm(writes)
        try:
            await operation(world, state)
        except Killed:
            pass
        else:
            await check_consistent(crashing.inner)
            await crashing.inner.close()
            return writes
        await crashing.inner.close()
        restarted = data.world(f"k{writes}", world.clock)
        try:
            bookings = await check_consistent(restarted.store)
            if after is not None:
                await after(restarted, state, bookings)
        finally:
            await restarted.store.close()
    raise AssertionError("the operation never got through")


async def _nothing(world) -> None:
    return None


async def test_a_kill_at_any_point_of_a_booking_leaves_no_orphan_seat(data):
    """Issue 15, finding 8: seat and booking record are written together or not at all."""

    async def operation(world, state):
        await book(world, "2027-01-12 08:00")

    async def after(world, state, bookings):
        # The slot keeps its full capacity unless the booking exists.
        slot = next(
            s
            for s in await world.scheduling.slots("vhs", "beratung", TUESDAY)
            if s.starts_at == at("2027-01-12 08:00")
        )
        assert slot.capacity == 2 - len(bookings)

    assert await _each_crash_point(data, _nothing, operation, after) >= 1


async def test_a_kill_during_an_idempotent_booking_lets_the_retry_book(data):
    """Issue 15, finding 8: after a kill, the client's retry with the same idempotency key gets the
    booking (the first one if it was written), not `in_progress` for a day."""

    async def operation(world, state):
        await book(world, "2027-01-12 08:00", idempotency_key="form-123456")

    async def after(world, state, bookings):
        world.clock.offset += 120  # the client retries two minutes later
        again = await book(world, "2027-01-12 08:00", idempotency_key="form-123456")
        assert again.booking.booking_id in bookings or not bookings
        assert len(await world.store.scan(BOOKING_KIND)) == 1
        await check_consistent(world.store)

    await _each_crash_point(data, _nothing, operation, after)


async def test_a_kill_at_any_point_of_a_cancellation_leaves_no_orphan_seat(data):
    """Issue 15, finding 8: the booking is cancelled and its seat freed together."""

    async def prepare(world):
        return await book(world, "2027-01-12 08:00")

    async def operation(world, booked):
        await world.scheduling.cancel(booked.booking)

    assert await _each_crash_point(data, prepare, operation) >= 1


@pytest.mark.parametrize("target", ["2027-01-12 08:40", "2027-01-13 09:20"], ids=["same-day", "other-day"])
async def test_a_kill_at_any_point_of_a_reschedule_keeps_exactly_one_appointment(data, target):
    """Issue 15, finding 8 and issue 17, item 11: moving an appointment changes its time, takes the new
    seat and frees the old one in one step: after a kill the citizen has the one appointment, with its
    reference and links, at the old time or at the new one — never both seats, never none."""

    async def prepare(world):
        return await book(world, "2027-01-12 08:00")

    async def operation(world, booked):
        await world.scheduling.reschedule(booked.booking, at(target).isoformat())

    async def after(world, booked, bookings):
        assert list(bookings) == [booked.booking.booking_id]
        now = bookings[booked.booking.booking_id]
        assert now.status == BOOKED and now.reference == booked.booking.reference
        assert (now.starts_at, now.sequence) in [(booked.booking.starts_at, 0), (at(target).timestamp(), 1)]
        assert world.scheduling.booked(now).join_token == booked.join_token

    assert await _each_crash_point(data, prepare, operation, after) >= 1


async def test_a_failed_reschedule_leaves_everything_as_it_was(data):
    """The new slot is taken: nothing changes, not even a reference number is used up."""
    world, crashing = await _world(data, "only")
    try:
        mine = await book(world, "2027-01-12 08:00")
        await book(world, "2027-01-12 08:40")
        await book(world, "2027-01-12 08:40")
        before = await crashing.inner.scan(BOOKING_KIND), await crashing.inner.scan(SEATS_KIND)
        with pytest.raises(BookingError) as caught:
            await world.scheduling.reschedule(mine.booking, at("2027-01-12 08:40").isoformat())
        assert caught.value.code == "slot_taken"
        assert (await crashing.inner.scan(BOOKING_KIND), await crashing.inner.scan(SEATS_KIND)) == before
        assert await crashing.inner.scan(IDEMPOTENCY_KIND) == []
        assert (await book(world, "2027-01-12 09:20")).booking.reference == "T-2027-000004"
    finally:
        await crashing.inner.close()


async def test_orphan_seats_left_by_older_versions_are_released_once(data):
    """Issue 15, finding 8: data damaged before the fix gets its capacity back at start-up — seats of
    bookings that never got written, were cancelled or moved away are freed; booked and no-show seats
    stay; running it again changes nothing."""
    world, crashing = await _world(data, "old")
    try:
        kept = await book(world, "2027-01-12 08:00")
        cancelled = await book(world, "2027-01-12 08:00")
        await world.scheduling.cancel(cancelled.booking)
        store = crashing.inner
        # What the old code left after a kill: an interval for a booking that does not exist, and the
        # interval of a cancelled booking.
        key = f"{cancelled.booking.advisor}|2027-01-12"
        record = await store.get(SEATS_KIND, key)
        busy = (record or {"busy": []})["busy"]
        start, until = cancelled.booking.starts_at, cancelled.booking.busy_until
        await store.put(SEATS_KIND, key, {"busy": [*busy, [start, until, cancelled.booking.booking_id]]})
        await store.put(SEATS_KIND, "anna|2027-01-13", {"busy": [[start + 86400, until + 86400, "ghost"]]})
        assert await world.scheduling.release_orphan_seats() == 2
        await check_consistent(store)
        assert await world.scheduling.release_orphan_seats() == 0
        slot = next(
            s
            for s in await world.scheduling.slots("vhs", "beratung", TUESDAY)
            if s.starts_at == at("2027-01-12 08:00")
        )
        assert slot.advisors == tuple(n for n in ("anna", "bert") if n != kept.booking.advisor)
    finally:
        await crashing.inner.close()


# --- kill -9 of a real server in the middle of booking bursts ------------------------------------------

KILL_ROUNDS = {"embedded": 5, "redis": 3}
BURST_SLOTS = 3  # slots per round, each wanted by PER_SLOT citizens; two advisors: 2 seats a slot
PER_SLOT = 5


def _bookable_slots(count: int) -> list[datetime]:
    """`count` future Weiterbildung slots (30 min + 10 buffer from 08:00) on days the VHS is open."""
    vhs = load_offices().require("vhs")
    found: list[datetime] = []
    day = datetime.now(BERLIN).date() + timedelta(days=7)
    while len(found) < count:
        intervals = hours.opening_intervals(vhs, day)
        for opens, closes in intervals:
            start = opens
            while start + timedelta(minutes=30) <= closes and len(found) < count:
                found.append(start)
                start += timedelta(minutes=40)
        day += timedelta(days=1)
    return found


async def _seed(store: Store) -> None:
    staff = StaffDirectory(store)
    book_ = AvailabilityBook(store)
    for name in ("anna", "bert"):
        await staff.add(name, PASSWORD, "advisor", ["vhs"], ["de"])
        await book_.set(parse_availability(name, {"weekly": FULL}))


async def _burst(base_url: str, pid: int, slots, earlier: list[dict], seq: list[int]) -> list[tuple]:
    """Bookings for `slots`, cancellations and moves of earlier bookings, all at once; the server is
    killed (SIGKILL) at a random moment while they run. Returns (kind, request, status, body)."""

    def forwarded() -> dict[str, str]:
        seq[0] += 1  # one address per request: the rate limit is not what this test is about
        return {"X-Forwarded-For": f"10.{seq[0] >> 16 & 255}.{seq[0] >> 8 & 255}.{seq[0] & 255}"}

    answered = [0]
    kill_after = random.randint(1, BURST_SLOTS * PER_SLOT // 2)
    due = asyncio.Event()

    async def call(session, kind: str, url: str, body: dict, about: Any) -> tuple:
        try:
            async with session.post(base_url + url, json=body, headers=forwarded()) as response:
                return kind, about, response.status, await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ConnectionError, ValueError):
            return kind, about, None, None
        finally:
            answered[0] += 1
            if answered[0] >= kill_after:
                due.set()

    async def kill() -> None:
        # Once some answers are in, the rest are being written: that is when the kill hurts.
        await due.wait()
        await asyncio.sleep(random.uniform(0, 0.01))
        os.kill(pid, signal.SIGKILL)

    requests = []
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for start in slots:
            for n in range(PER_SLOT):
                body = {
                    "office": "vhs",
                    "service": "weiterbildung",
                    "channel": "video",
                    "starts_at": start.isoformat(),
                    "name": f"Person {seq[0]}-{n}",
                    "consent": True,
                }
                requests.append(call(session, "book", "/api/bookings", body, start))
        for i, booked in enumerate(earlier):
            token = booked["manage_token"]
            if i % 2:
                requests.append(call(session, "cancel", f"/api/bookings/{token}/cancel", {}, booked))
            else:
                target = {"starts_at": random.choice(slots).isoformat()}
                requests.append(call(session, "move", f"/api/bookings/{token}/reschedule", target, booked))
        results = await asyncio.gather(kill(), *requests)
    return results[1:]


@pytest.mark.parametrize("adapter", ["embedded", "redis"])
async def test_kill_9_during_booking_bursts_leaves_seats_and_bookings_consistent(tmp_path, adapter):
    """Issue 15, finding 8, from outside: `sprechstunde serve` is killed with SIGKILL in the middle of
    bursts of bookings, cancellations and moves, round after round on the same data. After each kill:
    every seat taken belongs to a booking that exists (none lost for good), every booking has its seat,
    every booking answered 201 exists, every cancellation answered 200 stands, and every move answered
    201 kept the booking (its id and reference) booked."""
    async with contextlib.AsyncExitStack() as stack:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        args = ["--trusted-proxy", "127.0.0.1/32"]
        if adapter == "redis":
            prefix = await stack.enter_async_context(redis_namespace())
            args += ["--redis", REDIS_URL, "--redis-prefix", prefix]

        def open_data() -> Store:
            if adapter == "redis":
                return RedisStore(REDIS_URL, prefix=prefix)
            return open_store(data_dir / DATABASE_FILE)

        prepare_data_dir(data_dir)
        store = open_data()
        await _seed(store)
        await store.close()
        rounds = KILL_ROUNDS[adapter]
        slots = _bookable_slots(rounds * BURST_SLOTS)
        earlier: list[dict] = []
        seq = [0]
        promised: dict[str, str] = {}  # booking id → the status the server's answers promise
        kills = unanswered = 0
        for round_ in range(rounds):
            server = ServerProcess(data_dir, *args, log_path=tmp_path / f"server{round_}.log")
            try:
                await asyncio.to_thread(server.wait_healthy, 20)
                mine = slots[round_ * BURST_SLOTS : (round_ + 1) * BURST_SLOTS]
                results = await _burst(server.url, server.pid, mine, earlier, seq)
            finally:
                server.proc.kill()  # a no-op when the burst's SIGKILL got there first
                await asyncio.to_thread(server.proc.wait)
            kills += server.proc.returncode == -signal.SIGKILL
            earlier = []
            unanswered += sum(1 for result in results if result[2] is None)
            for kind, about, status, body in results:
                if kind == "book" and status == 201:
                    promised[body["booking_id"]] = BOOKED
                    earlier.append(body)
                elif kind == "cancel" and status == 200:
                    promised[about["booking_id"]] = "cancelled"
                elif kind == "move" and status == 201:
                    # issue 17, item 11: the same booking, at its new time
                    assert body["booking_id"] == about["booking_id"]
                    assert body["reference"] == about["reference"]
                    promised[about["booking_id"]] = BOOKED
                    earlier.append(body)
            earlier = earlier[:6]
            store = open_data()
            try:
                bookings = await check_consistent(store)
            finally:
                await store.close()
            for booking_id, status in promised.items():
                assert booking_id in bookings, f"round {round_}: a booking answered 201 is gone"
                if status != BOOKED:  # a later round may have cancelled or moved a booked one
                    assert bookings[booking_id].status == status, f"round {round_}: {booking_id}"
        assert kills == rounds and unanswered > 0  # every round was killed, mid-burst
        assert sum(1 for b in bookings.values() if b.status == BOOKED) > 0  # the bursts did book
