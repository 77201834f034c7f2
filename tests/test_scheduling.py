"""The scheduling domain: slots across clock changes, holidays and absences; atomic seats (the 50-way
race for the last one); cancel, reschedule, idempotency, tokens; the hand-over into the waiting room."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest

from sprechstunde.rooms.queue import Appointment
from sprechstunde.rooms.routing import APPOINTMENT, lane
from sprechstunde.scheduling.bookings import SchedulingService
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.records import BOOKING_KIND, JOIN_PURPOSE, MANAGE_PURPOSE
from sprechstunde.store import RedisStore, open_store
from tests.scheduling_support import BERLIN, at, build_world
from tests.test_store import REDIS_URL, redis_namespace

TUESDAY = date(2027, 1, 12)


@pytest.fixture
async def world(tmp_path):
    world = build_world(tmp_path)
    world.clock.set(at("2027-01-04 12:00"))  # a Monday, a week before TUESDAY
    yield world
    await world.store.close()


def starts(slots) -> list[str]:
    return [s.starts_at.strftime("%H:%M") for s in slots]


async def book(world, when: str, **extra):
    body = {"name": "Erika Mustermann", "email": "erika@example.org", "consent": True} | extra
    office, service, channel = (
        body.pop("office", "vhs"),
        body.pop("service", "beratung"),
        body.pop("channel", "video"),
    )
    return await world.scheduling.book(office, service, channel, at(when).isoformat(), **body)


async def test_slots_follow_office_hours_length_and_buffer(world):
    await world.advisor("anna")
    tuesday = await world.scheduling.slots("vhs", "beratung", TUESDAY)
    # 30 minutes + 10 buffer from 08:00; the last one ends by 17:00
    assert starts(tuesday)[:3] == ["08:00", "08:40", "09:20"] and starts(tuesday)[-1] == "16:00"
    assert len(tuesday) == 13 and all(s.capacity == 1 for s in tuesday)
    assert tuesday[0].starts_at.tzinfo == BERLIN and tuesday[0].as_json()["starts_at"].endswith("+01:00")
    friday = await world.scheduling.slots("vhs", "beratung", date(2027, 1, 15))
    assert starts(friday)[-1] == "12:00" and len(friday) == 7
    assert await world.scheduling.slots("vhs", "beratung", date(2027, 1, 16)) == []  # Saturday


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # spring forward: 02:00 does not exist, 01:00–05:00 local is three real hours
        (date(2027, 3, 28), ["01:00+01:00", "03:00+02:00", "04:00+02:00"]),
        # fall back: 02:00 happens twice, 01:00–05:00 local is five real hours
        (date(2027, 10, 31), ["01:00+02:00", "02:00+02:00", "02:00+01:00", "03:00+01:00", "04:00+01:00"]),
        (date(2027, 3, 21), ["01:00+01:00", "02:00+01:00", "03:00+01:00", "04:00+01:00"]),
    ],
)
async def test_slots_on_the_days_the_clocks_change(world, day, expected):
    await world.advisor("nora", offices=("nacht",))
    world.clock.set(at(f"{day - timedelta(days=7)} 12:00"))
    slots = await world.scheduling.slots("nacht", "stunde", day)
    assert [s.starts_at.isoformat()[11:16] + s.starts_at.isoformat()[19:] for s in slots] == expected
    # each slot is one real hour long, and they do not overlap
    for slot in slots:
        assert slot.ends_at.timestamp() - slot.starts_at.timestamp() == 3600
    for a, b in zip(slots, slots[1:], strict=False):
        assert a.ends_at.timestamp() <= b.starts_at.timestamp()
    # and each can be booked as the slot list gives it
    await world.scheduling.book(
        "nacht", "stunde", "video", slots[-1].starts_at.isoformat(), name="N", consent=True
    )


async def test_holidays_closures_and_absences_have_no_slots(world):
    await world.advisor("anna", absences=[{"from": "2027-05-19", "to": "2027-05-20", "reason": "Urlaub"}])
    world.clock.set(at("2027-05-03 12:00"))
    assert await world.scheduling.slots("vhs", "beratung", date(2027, 5, 27)) == []  # Fronleichnam (NW)
    assert await world.scheduling.slots("vhs", "beratung", date(2027, 5, 19)) == []  # absent
    assert await world.scheduling.slots("vhs", "beratung", date(2027, 5, 20)) == []
    assert len(await world.scheduling.slots("vhs", "beratung", date(2027, 5, 18))) == 13
    days = {d["date"]: d for d in await world.scheduling.days("vhs", "beratung", date(2027, 5, 1))}
    assert days["2027-05-27"]["free_slots"] == 0 and days["2027-05-27"]["closed"] == "Fronleichnam"
    assert days["2027-05-26"]["free_slots"] == 13 and days["2027-05-29"]["free_slots"] == 0
    with pytest.raises(BookingError) as caught:
        await book(world, "2027-05-27 10:00")
    assert caught.value.code == "holiday"


async def test_weekly_pattern_limits_an_advisor(world):
    await world.advisor("anna", weekly={"tue": ["09:00-10:00", "14:00-15:00"]})
    assert starts(await world.scheduling.slots("vhs", "beratung", TUESDAY)) == ["09:20", "14:00"]
    assert await world.scheduling.slots("vhs", "beratung", TUESDAY + timedelta(days=1)) == []


async def test_capacity_is_free_advisors_and_only_speakers_of_the_language(world):
    await world.advisor("anna", languages=("de", "en"))
    await world.advisor("bert")
    assert (await world.scheduling.slots("vhs", "beratung", TUESDAY))[0].capacity == 2
    assert (await world.scheduling.slots("vhs", "beratung", TUESDAY, language="en"))[0].capacity == 1
    first = await book(world, "2027-01-12 08:00")
    second = await book(world, "2027-01-12 08:00")
    assert {first.booking.advisor, second.booking.advisor} == {"anna", "bert"}
    assert starts(await world.scheduling.slots("vhs", "beratung", TUESDAY))[0] == "08:40"
    with pytest.raises(BookingError) as caught:
        await book(world, "2027-01-12 08:00")
    assert caught.value.code == "slot_taken" and caught.value.status == 409
    assert caught.value.message == "Dieser Termin ist gerade vergeben"
    assert caught.value.detail["slots"][0]["starts_at"] == at("2027-01-12 08:40").isoformat()


async def test_a_longer_service_blocks_overlapping_slots_of_another(world):
    await world.advisor("anna")
    await book(world, "2027-01-12 08:00", service="kurs")  # 08:00–09:00
    # 08:40–09:10 (+10 buffer) overlaps; 09:20 is free
    assert starts(await world.scheduling.slots("vhs", "beratung", TUESDAY))[0] == "09:20"


async def test_fifty_concurrent_requests_for_the_last_seat(world):
    await world.advisor("anna")
    results = await asyncio.gather(
        *(book(world, "2027-01-12 10:40", name=f"Person {i}") for i in range(50)), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 49
    assert all(isinstance(e, BookingError) and e.code == "slot_taken" for e in lost)
    # the fresh slots they get no longer offer the taken one
    assert all(
        at("2027-01-12 10:40").isoformat() not in [s["starts_at"] for s in e.detail["slots"]] for e in lost
    )
    assert len(await world.store.scan(BOOKING_KIND)) == 1


async def test_cancel_frees_the_seat(world):
    await world.advisor("anna")
    booked = await book(world, "2027-01-12 08:00")
    assert "08:00" not in starts(await world.scheduling.slots("vhs", "beratung", TUESDAY))
    cancelled = await world.scheduling.cancel(booked.booking)
    assert cancelled.status == "cancelled"
    assert "08:00" in starts(await world.scheduling.slots("vhs", "beratung", TUESDAY))
    with pytest.raises(BookingError) as caught:
        await world.scheduling.cancel(cancelled)
    assert caught.value.code == "not_booked"
    again = await book(world, "2027-01-12 08:00")
    assert again.booking.reference != booked.booking.reference


async def test_reschedule_takes_the_new_slot_and_frees_the_old(world):
    """Issue 17, item 11: the appointment stays the same booking (reference, links) at the new time."""
    await world.advisor("anna")
    booked = await book(world, "2027-01-12 08:00")
    moved = await world.scheduling.reschedule(booked.booking, at("2027-01-12 08:40").isoformat())
    assert moved.booking.booking_id == booked.booking.booking_id
    assert moved.booking.reference == booked.booking.reference and moved.booking.sequence == 1
    assert (moved.manage_token, moved.join_token) == (booked.manage_token, booked.join_token)
    assert starts(await world.scheduling.slots("vhs", "beratung", TUESDAY))[0] == "08:00"
    # a slot nobody can take: nothing changes
    await book(world, "2027-01-12 10:00")
    with pytest.raises(BookingError) as caught:
        await world.scheduling.reschedule(moved.booking, at("2027-01-12 10:00").isoformat())
    assert caught.value.code == "slot_taken"
    assert await world.scheduling.get(moved.booking.booking_id) == moved.booking
    cancelled = await world.scheduling.cancel(moved.booking)
    with pytest.raises(BookingError) as caught:
        await world.scheduling.reschedule(cancelled, at("2027-01-12 11:20").isoformat())
    assert caught.value.code == "not_booked"


async def test_idempotent_repeat_returns_the_first_booking(world):
    await world.advisor("anna")
    await world.advisor("bert")
    first, second = await asyncio.gather(
        book(world, "2027-01-12 08:00", idempotency_key="form-123456"),
        book(world, "2027-01-12 08:00", idempotency_key="form-123456"),
    )
    assert first.booking.booking_id == second.booking.booking_id
    assert sorted([first.replayed, second.replayed]) == [False, True]
    assert len(await world.store.scan(BOOKING_KIND)) == 1
    with pytest.raises(BookingError) as caught:
        await book(world, "2027-01-12 08:40", idempotency_key="form-123456")
    assert caught.value.code == "idempotency_mismatch"
    assert len(await world.store.scan(BOOKING_KIND)) == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"when": "2027-01-04 08:00"}, "past_slot"),
        ({"when": "2027-01-12 07:20"}, "outside_hours"),
        ({"when": "2027-01-12 08:10"}, "outside_hours"),
        ({"when": "2027-01-16 10:00"}, "outside_hours"),
        ({"when": "2027-12-25 10:00"}, "too_far"),
        ({"office": "nowhere"}, "unknown_office"),
        ({"service": "nothing"}, "unknown_service"),
        ({"service": "kurs", "channel": "in_person"}, "invalid_channel"),
        ({"email": "erika@"}, "invalid_email"),
        ({"phone": "call me"}, "invalid_phone"),
        ({"consent": False}, "consent_required"),
        ({"name": "  "}, "invalid_name"),
        ({"language": "xx"}, "unknown_language"),
    ],
)
async def test_bad_requests_create_nothing(world, change, code):
    await world.advisor("anna")
    when = change.pop("when", "2027-01-12 08:00")
    with pytest.raises(BookingError) as caught:
        await book(world, when, **change)
    assert caught.value.code == code and 400 <= caught.value.status < 500
    assert await world.store.scan(BOOKING_KIND) == []
    assert await world.store.scan("booking-seats") == []


async def test_manage_tokens_forged_expired_or_of_another_kind(world):
    await world.advisor("anna")
    booked = await book(world, "2027-01-12 08:00")
    assert (await world.scheduling.for_token(booked.manage_token)).booking_id == booked.booking.booking_id
    signer = world.scheduling._signer
    cases = [
        (booked.manage_token[:-2] + "xx", "invalid_token", 403),
        (signer.sign(MANAGE_PURPOSE, {"b": booked.booking.booking_id, "exp": 1}), "expired", 410),
        (booked.join_token, "invalid_token", 403),  # a join link cannot cancel
        (signer.sign(MANAGE_PURPOSE, {"b": "nobody", "exp": 4_000_000_000}), "unknown_booking", 404),
        (None, "invalid_token", 403),
    ]
    for token, code, status in cases:
        with pytest.raises(BookingError) as caught:
            await world.scheduling.for_token(token)
        assert (caught.value.code, caught.value.status) == (code, status)
    assert (await world.scheduling.for_token(booked.join_token, JOIN_PURPOSE)).status == "booked"


async def test_bookings_survive_a_restart(world, tmp_path):
    await world.advisor("anna")
    booked = await book(world, "2027-01-12 08:00")
    await world.store.close()
    again = build_world(tmp_path, world.clock)
    try:
        assert (await again.scheduling.for_token(booked.manage_token)).reference == booked.booking.reference
        assert "08:00" not in starts(await again.scheduling.slots("vhs", "beratung", TUESDAY))
    finally:
        await again.store.close()
    world.store = open_store(tmp_path / "test.sqlite3")


async def test_join_link_countdown_waiting_room_and_over(world):
    anna = await world.advisor("anna")
    bert = await world.advisor("bert")
    booked = await book(world, "2027-01-12 10:00", channel="video")
    world.clock.set(at("2027-01-12 09:49"))
    early = await world.scheduling.join(booked.booking)
    assert early.state == "early" and early.opens_at == at("2027-01-12 09:50").timestamp()

    # a walk-in arrives first
    world.clock.set(at("2027-01-12 09:51"))
    walk_in = await world.queue.enqueue("vhs", "de", "Frage ohne Termin")
    opened = await world.scheduling.join(booked.booking)
    assert opened.state == "open" and opened.wait_token
    # a second click (or a concurrent one) gives the same place in line
    twice = await asyncio.gather(*(world.scheduling.join(booked.booking) for _ in range(5)))
    assert {j.wait_token for j in twice} == {opened.wait_token}
    entry = await world.queue.entry_for_token(opened.wait_token)
    assert entry.booking_id == booked.booking.booking_id and entry.advisor == booked.booking.advisor
    assert entry.lane == lane("vhs", "de", APPOINTMENT)
    # not yet due (the queue's lead is 5 minutes): the walk-in is still first
    assert (await world.queue.status(walk_in.entry.entry_id)).position == 1
    world.clock.set(at("2027-01-12 09:56"))
    assert (await world.queue.status(entry.entry_id)).position == 1
    assert (await world.queue.status(walk_in.entry.entry_id)).position == 2

    # the assigned advisor sees and gets them first; the colleague gets the walk-in
    assigned, other = (anna, bert) if booked.booking.advisor == "anna" else (bert, anna)
    assert (await world.queue.waiting_for(assigned))[0].entry_id == entry.entry_id
    assert (await world.queue.claim_next(assigned)).entry.entry_id == entry.entry_id
    assert (await world.queue.claim_next(other)).entry.entry_id == walk_in.entry.entry_id

    world.clock.set(at("2027-01-12 10:31"))
    assert (await world.scheduling.join(booked.booking)).state == "over"


async def test_other_advisors_still_serve_a_due_appointment_ahead_of_walk_ins(world):
    await world.advisor("anna")
    booked = await book(world, "2027-01-12 10:00")
    world.clock.set(at("2027-01-12 09:55"))
    await world.queue.enqueue("vhs", "de", "Walk-in")
    opened = await world.scheduling.join(booked.booking)
    colleague = await world.staff.add("carl", "richtig-langes-passwort", "advisor", ["vhs"], ["de"])
    # carl has no availability pattern, so he was not bookable, but he may still serve
    claimed = await world.queue.claim_next(colleague)
    assert claimed.entry.booking_id == booked.booking.booking_id
    assert (await world.queue.entry_for_token(opened.wait_token)).state == "called"


async def test_no_show_only_after_the_start(world):
    member = await world.advisor("anna")
    booked = await book(world, "2027-01-12 10:00")
    with pytest.raises(BookingError) as caught:
        await world.scheduling.mark_no_show(booked.booking, by=member.username)
    assert caught.value.code == "not_started"
    world.clock.set(at("2027-01-12 10:15"))
    marked = await world.scheduling.mark_no_show(booked.booking, by=member.username)
    assert marked.status == "no_show" and marked.changed_by == "anna"
    assert (await world.scheduling.join(marked)).state == "over"


def test_appointment_carries_the_advisor():
    assert Appointment(at("2027-01-12 10:00"), "b", "anna").advisor == "anna"
    assert isinstance(SchedulingService, type)


async def test_fifty_concurrent_requests_on_redis_too(tmp_path):
    """The same race through the Redis adapter (several server processes share one Redis)."""
    async with redis_namespace() as prefix:
        world = build_world(tmp_path, store=RedisStore(REDIS_URL, prefix=prefix))
        try:
            world.clock.set(at("2027-01-04 12:00"))
            await world.advisor("anna")
            await world.advisor("bert")
            results = await asyncio.gather(
                *(book(world, "2027-01-12 10:40", name=f"P{i}") for i in range(50)), return_exceptions=True
            )
            won = [r for r in results if not isinstance(r, BaseException)]
            assert len(won) == 2 and {w.booking.advisor for w in won} == {"anna", "bert"}
            assert all(
                isinstance(r, BookingError) and r.code == "slot_taken" for r in results if r not in won
            )
            await world.scheduling.cancel(won[0].booking)
            assert (await world.scheduling.slots("vhs", "beratung", TUESDAY))[4].capacity == 1
        finally:
            await world.store.close()
