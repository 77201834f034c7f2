# Over 500 lines: one queue and one fixture set; split by topic it would repeat the fixtures.
"""The waiting-room queue: routing, estimates, atomic claims, abandonment, outcomes, tickets, restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sprechstunde.rooms.consultations import CONSULTATION_KIND
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import load_offices
from sprechstunde.rooms.queue import ENTRY_KIND, QUEUE, Appointment, QueueService
from sprechstunde.rooms.routing import advisor_lanes, can_serve, lane
from sprechstunde.rooms.service import RoomService
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.store import SQLiteStore

BERLIN = ZoneInfo("Europe/Berlin")
TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN).timestamp()
SECRET = b"k" * 32


class Clock:
    def __init__(self, now: float = TUESDAY_10) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def staff(
    name: str, *offices: str, languages: tuple[str, ...] = ("de",), role: str = "advisor"
) -> StaffMember:
    return StaffMember(username=name, role=role, offices=list(offices or ("vhs",)), languages=list(languages))


def make_service(store: SQLiteStore, clock: Clock) -> QueueService:
    signer = TokenSigner(SECRET, clock=clock)
    return QueueService(store, load_offices(), signer, RoomService(store, signer, clock=clock), clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path, clock):
    s = SQLiteStore(tmp_path / "q.sqlite3", clock=clock)
    yield s
    await s.close()


@pytest.fixture
def queue(store, clock) -> QueueService:
    return make_service(store, clock)


async def walk_in(queue: QueueService, office: str = "vhs", language: str = "de", **kw):
    return await queue.enqueue(office, language, kw.pop("topic", "Sprachkurs"), **kw)


async def nothing_changed(store: SQLiteStore) -> bool:
    return await store.queued(QUEUE, claimed=None) == [] and await store.scan(ENTRY_KIND) == []


# --- routing -------------------------------------------------------------------------------------


def test_can_serve_needs_office_language_and_a_serving_role():
    class Entry:
        office, language = "vhs", "tr"

    assert can_serve(staff("a", "vhs", languages=("de", "tr")), Entry)
    assert can_serve(staff("l", "vhs", languages=("tr",), role="lead"), Entry)
    assert not can_serve(staff("b", "vhs", languages=("de",)), Entry)
    assert not can_serve(staff("c", "familienbuero", languages=("tr",)), Entry)
    assert not can_serve(staff("d", "vhs", languages=("tr",), role="admin"), Entry)
    disabled = StaffMember("e", "advisor", ["vhs"], disabled=True, languages=["tr"])
    assert not can_serve(disabled, Entry)


def test_advisor_lanes_follow_the_office_configuration():
    offices = load_offices()
    member = staff("a", "vhs", "standesamt", "unknown-office", languages=("de", "tr"))
    # The Standesamt offers de and en only, so no Turkish lane there; unknown offices are ignored.
    assert advisor_lanes(member, offices) == [lane("vhs", "de"), lane("vhs", "tr"), lane("standesamt", "de")]
    assert advisor_lanes(staff("x", "vhs", role="admin"), offices) == []


# --- joining the queue ---------------------------------------------------------------------------


async def test_enqueue_returns_entry_token_and_position(queue):
    joined = await walk_in(queue, note="  Ich brauche eine Bescheinigung  ")
    assert joined.entry.note == "Ich brauche eine Bescheinigung"
    assert joined.entry.state == "waiting" and joined.entry.kind == "walk-in"
    assert (await queue.entry_for_token(joined.token)).entry_id == joined.entry.entry_id
    assert joined.status.position == 1
    # Nobody online: no estimate, and the UI learns that nobody speaks any language right now.
    assert joined.status.estimated_wait is None
    assert not joined.status.availability.language_available
    assert joined.status.as_json()["language_available"] is False


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"office": "rathaus"}, "unknown_office"),
        ({"office": None}, "unknown_office"),
        ({"language": "xx"}, "unknown_language"),
        ({"office": "standesamt", "language": "tr"}, "unknown_language"),
        ({"topic": "   "}, "invalid_topic"),
        ({"topic": "x" * 201}, "invalid_topic"),
        ({"note": "   "}, "empty_note"),
        ({"note": "x" * 501}, "note_too_long"),
        ({"transcript": "hallo"}, "invalid_transcript"),
        ({"transcript": [{"role": "admin", "text": "x"}]}, "invalid_transcript"),
        ({"transcript": [{"role": "bot", "text": "x" * 20_001}]}, "transcript_too_long"),
        ({"appointment": Appointment(datetime(2026, 3, 10, 11, 0))}, "invalid_appointment"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(queue, store, args, code):
    params = {"office": "vhs", "language": "de", "topic": "Sprachkurs"} | args
    with pytest.raises(QueueError) as err:
        await queue.enqueue(**params)
    assert err.value.code == code
    assert await nothing_changed(store)


async def test_unknown_language_lists_the_offered_ones(queue):
    with pytest.raises(QueueError) as err:
        await walk_in(queue, "standesamt", "fr")
    assert err.value.detail["languages"] == ["de", "en"]


async def test_walk_ins_are_refused_outside_hours_with_next_opening(queue, store, clock):
    clock.now = datetime(2026, 3, 13, 14, 0, tzinfo=BERLIN).timestamp()  # Friday afternoon
    with pytest.raises(QueueError) as err:
        await walk_in(queue)
    assert (err.value.code, err.value.status) == ("closed", 409)
    assert err.value.detail["next_opening"] == "2026-03-16T08:00:00+01:00"
    assert await nothing_changed(store)
    # A booked appointment is still accepted (the citizen joins a few minutes early).
    monday = datetime(2026, 3, 16, 8, 0, tzinfo=BERLIN)
    joined = await queue.enqueue("vhs", "de", "Beratung", appointment=Appointment(monday, "B-1"))
    assert joined.entry.kind == "appointment" and joined.entry.booking_id == "B-1"


async def test_transcript_is_kept(queue):
    transcript = [{"role": "citizen", "text": "Wann beginnt der Kurs?"}, {"role": "bot", "text": "Im April."}]
    joined = await walk_in(queue, transcript=transcript)
    assert (await queue.get(joined.entry.entry_id)).transcript == transcript


async def test_note_while_waiting(queue):
    joined = await walk_in(queue)
    assert (await queue.set_note(joined.entry.entry_id, "Kurs B1")).note == "Kurs B1"
    for bad, code in (("", "empty_note"), ("x" * 501, "note_too_long")):
        with pytest.raises(QueueError) as err:
            await queue.set_note(joined.entry.entry_id, bad)
        assert err.value.code == code
    assert (await queue.get(joined.entry.entry_id)).note == "Kurs B1"
    await queue.claim_next(staff("anna"))
    with pytest.raises(QueueError) as err:
        await queue.set_note(joined.entry.entry_id, "zu spät")
    assert err.value.code == "not_waiting"


async def test_waiting_token_forged_or_expired(queue, clock):
    joined = await walk_in(queue)
    body, sig = joined.token.split(".")
    with pytest.raises(QueueError) as err:
        await queue.entry_for_token(body + "." + sig[::-1])
    assert (err.value.code, err.value.status) == ("invalid_token", 403)
    # A join-link signature is not a waiting-room token (purpose separation).
    join = TokenSigner(SECRET, clock=clock).join_token("room", "citizen", clock.now + 60)
    with pytest.raises(QueueError) as err:
        await queue.entry_for_token(join)
    assert err.value.code == "invalid_token"
    clock.now += 25 * 3600
    with pytest.raises(QueueError) as err:
        await queue.entry_for_token(joined.token)
    assert (err.value.code, err.value.status) == ("expired", 410)


# --- positions and estimates ---------------------------------------------------------------------


async def test_position_and_estimate(queue, clock):
    entries = []
    for _ in range(3):
        entries.append((await walk_in(queue)).entry.entry_id)
        clock.now += 1
    other_language = (await walk_in(queue, language="en")).entry.entry_id
    await queue.advisor_online(staff("anna", languages=("de", "en")))
    await queue.advisor_online(staff("ben", languages=("de",)))
    statuses = [await queue.status(e) for e in entries]
    assert [s.position for s in statuses] == [1, 2, 3]
    # As claim_next will go (rooms/estimate.py): both idle advisors take the first two at once, the
    # third waits for one of them (no consultations yet: the configured 12 minutes of the VHS).
    assert [s.estimated_wait for s in statuses] == [0.0, 0.0, 720.0]
    assert [s.advisor_free for s in statuses] == [True, True, False]
    # Only anna speaks English, and she takes the German walk-ins who came earlier first.
    en = await queue.status(other_language)
    assert (en.position, en.estimated_wait, en.availability.advisors_online) == (3, 1440.0, 1)
    # Real consultations replace the default: median of 4, 6 and 20 minutes is 6 minutes.
    for minutes in (4, 20, 6):
        consultation = await queue.claim_next(staff("ben"))
        clock.now += minutes * 60
        await queue.finish(staff("ben"), consultation.entry.entry_id, "resolved")
    await queue.advisor_online(staff("anna", languages=("de", "en")))  # the heartbeat, 30 min later
    status = await queue.status(other_language)
    assert (status.position, status.estimated_wait, status.advisor_free) == (1, 0.0, True)  # anna is idle
    later = await queue.status((await walk_in(queue, language="en")).entry.entry_id)
    assert (later.position, later.estimated_wait) == (2, 6 * 60)  # after the first: the median, 6 minutes
    # A no-show does not count as a handling time.
    await walk_in(queue)
    consultation = await queue.claim_next(staff("ben"))
    clock.now += 3600
    await queue.finish(staff("ben"), consultation.entry.entry_id, "no_show")
    assert await queue.log.median_handling(load_offices().require("vhs")) == 360.0


async def test_position_moves_up_when_the_first_is_served(queue, clock):
    first = (await walk_in(queue)).entry.entry_id
    clock.now += 0.001  # arrivals at the very same instant are ordered by entry id
    second = (await walk_in(queue)).entry.entry_id
    assert (await queue.status(second)).position == 2
    consultation = await queue.claim_next(staff("anna"))
    assert consultation.entry.entry_id == first
    assert (await queue.status(second)).position == 1
    called = await queue.status(first)
    assert called.state == "called" and called.room_id == consultation.room.room_id
    assert called.position is None


async def test_no_advisor_for_the_language_is_reported(queue):
    await queue.advisor_online(staff("anna", languages=("de", "en")))
    await queue.advisor_online(staff("fb", "familienbuero", languages=("tr",)))
    joined = await walk_in(queue, language="tr")
    availability = joined.status.availability
    assert availability.advisors_online == 0 and not availability.language_available
    assert availability.languages_online == ("de", "en")  # what the VHS can offer instead
    assert joined.status.estimated_wait is None
    assert (await queue.availability("vhs", "en")).advisors_online == 1
    with pytest.raises(QueueError) as err:
        await queue.availability("vhs", "xx")
    assert err.value.code == "unknown_language"


async def test_presence_expires_without_heartbeat(queue, clock):
    await queue.advisor_online(staff("anna"))
    assert (await queue.availability("vhs", "de")).advisors_online == 1
    clock.now += 91
    assert (await queue.availability("vhs", "de")).advisors_online == 0
    await queue.advisor_online(staff("anna"))
    await queue.advisor_offline("anna")
    assert (await queue.availability("vhs", "de")).advisors_online == 0


# --- appointments --------------------------------------------------------------------------------


async def test_due_appointments_go_ahead_of_walk_ins(queue, clock):
    early_walk_in = (await walk_in(queue)).entry.entry_id
    clock.now += 1
    at_10_30 = datetime(2026, 3, 10, 10, 30, tzinfo=BERLIN)
    booked = (await queue.enqueue("vhs", "de", "Termin", appointment=Appointment(at_10_30))).entry.entry_id
    anna = staff("anna")
    # Not due yet (due from 5 minutes before its start): the walk-in goes first.
    assert [e.entry_id for e in await queue.waiting_for(anna)] == [early_walk_in, booked]
    status = await queue.status(booked)
    assert not status.due
    await queue.advisor_online(anna)
    assert status.estimated_wait is None  # computed before anyone was online
    assert (await queue.status(booked)).estimated_wait == 25 * 60 - 1  # until due, at least
    later_walk_in = (await walk_in(queue)).entry.entry_id
    clock.now = at_10_30.timestamp() - 300
    assert (await queue.status(booked)).position == 1
    assert (await queue.status(later_walk_in)).position == 3  # behind the due appointment and the first
    assert [e.entry_id for e in await queue.waiting_for(anna)] == [booked, early_walk_in, later_walk_in]
    assert (await queue.claim_next(anna)).entry.entry_id == booked
    assert (await queue.claim_next(anna)).entry.entry_id == early_walk_in


async def test_appointment_wait_counts_from_its_start(queue, clock):
    at = datetime(2026, 3, 10, 10, 30, tzinfo=BERLIN)
    booked = (await queue.enqueue("vhs", "de", "Termin", appointment=Appointment(at))).entry.entry_id
    clock.now = at.timestamp() + 120
    anna = staff("anna")
    await queue.claim(anna, booked)
    clock.now += 600
    outcome = await queue.finish(anna, booked, "resolved")
    assert (outcome.wait_seconds, outcome.handling_seconds) == (120, 600)


# --- claiming ------------------------------------------------------------------------------------


async def test_claim_next_follows_routing(queue, clock):
    de = (await walk_in(queue)).entry.entry_id
    clock.now += 1
    tr = (await walk_in(queue, language="tr")).entry.entry_id
    clock.now += 1
    fb = (await walk_in(queue, "familienbuero")).entry.entry_id
    turkish = staff("tuerkan", languages=("tr",))
    assert (await queue.claim_next(turkish)).entry.entry_id == tr
    assert await queue.claim_next(turkish) is None
    assert [e.entry_id for e in await queue.waiting_for(staff("x", "vhs", "familienbuero"))] == [de, fb]
    consultation = await queue.claim_next(staff("anna", "vhs", "familienbuero"))
    assert consultation.entry.entry_id == de and consultation.entry.claimed_by == "anna"
    assert consultation.room.office == "vhs" and consultation.room.created_by == "anna"


async def test_claim_a_particular_entry_and_refusals(queue, store):
    vhs_entry = (await walk_in(queue)).entry.entry_id
    fb_entry = (await walk_in(queue, "familienbuero")).entry.entry_id
    tr_entry = (await walk_in(queue, language="tr")).entry.entry_id
    anna = staff("anna")
    before = await store.queued(QUEUE)
    cases = [
        (anna, fb_entry, "forbidden_office", 403),
        (anna, tr_entry, "language_not_served", 403),
        (anna, "forged-entry-id", "unknown_entry", 404),
        (staff("root", "vhs", role="admin"), vhs_entry, "forbidden_role", 403),
        (StaffMember("old", "advisor", ["vhs"], disabled=True), vhs_entry, "forbidden", 403),
    ]
    for member, entry_id, code, status in cases:
        with pytest.raises(QueueError) as err:
            await queue.claim(member, entry_id)
        assert (err.value.code, err.value.status) == (code, status)
    assert await store.queued(QUEUE) == before  # nothing changed
    assert (await queue.claim(anna, vhs_entry)).entry.entry_id == vhs_entry
    with pytest.raises(QueueError) as err:
        await queue.claim(staff("ben"), vhs_entry)
    assert err.value.code == "not_waiting"


async def test_100_concurrent_claims_against_50_entries(queue, store, clock):
    entries = []
    for i in range(50):
        entries.append((await walk_in(queue, language="en" if i % 5 == 0 else "de")).entry.entry_id)
        clock.now += 1
    advisors = [staff(f"adv{n:03d}", languages=("de", "en")) for n in range(100)]
    results = await asyncio.gather(*(queue.claim_next(a) for a in advisors))
    won = [r for r in results if r is not None]
    assert len(won) == 50 and results.count(None) == 50
    assert sorted(c.entry.entry_id for c in won) == sorted(entries)  # each exactly once, none skipped
    assert len({c.entry.claimed_by for c in won}) == 50
    assert len({c.room.room_id for c in won}) == 50
    for consultation in won:
        item = await store.queue_item(QUEUE, consultation.entry.entry_id)
        assert item.claimed_by == consultation.entry.claimed_by
        assert (await queue.get(consultation.entry.entry_id)).room_id == consultation.room.room_id
    assert await store.queued(QUEUE) == []


async def test_concurrent_claim_next_and_pick_mixed(queue, clock):
    entries = []
    for _ in range(50):
        entries.append((await walk_in(queue)).entry.entry_id)
        clock.now += 1

    async def pick(n: int):
        try:
            return await queue.claim(staff(f"pick{n}"), entries[n % 50])
        except QueueError as exc:
            assert exc.code == "not_waiting"
            return None

    calls = [queue.claim_next(staff(f"next{n}")) for n in range(50)] + [pick(n) for n in range(50)]
    results = [r for r in await asyncio.gather(*calls) if r is not None]
    assert sorted(r.entry.entry_id for r in results) == sorted(entries)


async def test_claims_are_atomic_across_two_store_connections(tmp_path, clock):
    """Two processes sharing one SQLite file (two connections, two threads) still never double-claim."""
    path = tmp_path / "shared.sqlite3"
    one, two = SQLiteStore(path, clock=clock), SQLiteStore(path, clock=clock)
    try:
        first, second = make_service(one, clock), make_service(two, clock)
        for _ in range(30):
            await walk_in(first)
            clock.now += 1
        calls = [svc.claim_next(staff(f"a{n}")) for n in range(30) for svc in (first, second)]
        won = [r.entry.entry_id for r in await asyncio.gather(*calls) if r is not None]
        assert len(won) == 30 and len(set(won)) == 30
    finally:
        await one.close()
        await two.close()


async def test_release_puts_the_citizen_back_in_front(queue, clock):
    first = (await walk_in(queue)).entry.entry_id
    clock.now += 1
    second = (await walk_in(queue)).entry.entry_id
    anna = staff("anna")
    await queue.claim_next(anna)
    with pytest.raises(QueueError) as err:
        await queue.release(staff("ben"), first)
    assert err.value.code == "not_claimed"
    released = await queue.release(anna, first)
    assert released.state == "waiting" and released.room_id is None
    assert (await queue.status(first)).position == 1 and (await queue.status(second)).position == 2


async def test_transfer_to_another_office_keeps_arrival_and_link(queue, clock):
    joined = await walk_in(queue)
    clock.now += 60
    fb_early = (await walk_in(queue, "familienbuero")).entry.entry_id
    anna = staff("anna")
    await queue.claim_next(anna)
    with pytest.raises(QueueError) as err:
        await queue.transfer(anna, joined.entry.entry_id, "rathaus")
    assert err.value.code == "unknown_office"
    moved = await queue.transfer(
        anna, joined.entry.entry_id, "familienbuero", note="Elterngeld, bitte Rückruf"
    )
    assert (moved.office, moved.state, moved.transferred_from) == ("familienbuero", "waiting", ["vhs"])
    assert (await queue.entry_for_token(joined.token)).office == "familienbuero"
    # They arrived before the Familienbüro's own walk-in, so they are first there.
    assert (await queue.status(joined.entry.entry_id)).position == 1
    assert (await queue.status(fb_early)).position == 2
    assert await queue.claim_next(anna) is None
    assert (await queue.claim_next(staff("fb", "familienbuero"))).entry.entry_id == joined.entry.entry_id


# --- abandonment ---------------------------------------------------------------------------------


async def test_disconnect_within_grace_keeps_the_place(queue, store, clock):
    entry_id = (await walk_in(queue)).entry.entry_id
    await queue.mark_connected(entry_id)
    clock.now += 30
    await queue.mark_disconnected(entry_id)
    clock.now += 59
    assert await queue.sweep() == []
    await queue.mark_connected(entry_id)  # the page reloaded
    clock.now += 120
    assert await queue.sweep() == []
    assert (await queue.status(entry_id)).position == 1


async def test_disconnect_beyond_grace_is_abandoned_with_wait_time(queue, store, clock):
    entry_id = (await walk_in(queue)).entry.entry_id
    second = (await walk_in(queue)).entry.entry_id
    await queue.mark_connected(entry_id)
    await queue.mark_connected(second)
    clock.now += 240
    await queue.mark_disconnected(entry_id)
    assert await queue.sweep(clock.now + 60) == [entry_id]
    assert await queue.sweep(clock.now + 120) == []  # once only
    assert (await queue.get(entry_id)).state == "abandoned"
    assert (await queue.status(entry_id)).state == "abandoned"
    assert (await queue.status(second)).position == 1
    [(key, record)] = await store.scan(CONSULTATION_KIND)
    assert key == f"2026-03-10/vhs/{entry_id}"
    assert record["outcome"] == "abandoned" and record["wait_seconds"] == 240
    assert record["hour"] == 10 and record["handling_seconds"] is None
    assert set(record) >= {"office", "language", "day", "hour", "wait_seconds", "outcome"}
    assert "note" not in record and "topic" not in record  # no personal data in statistics


async def test_a_link_never_opened_expires_after_connect_grace(queue, clock):
    entry_id = (await walk_in(queue)).entry.entry_id
    assert await queue.sweep(clock.now + 299) == []
    assert await queue.sweep(clock.now + 300) == [entry_id]


async def test_a_citizen_called_while_disconnected_is_not_abandoned(queue, clock):
    entry_id = (await walk_in(queue)).entry.entry_id
    await queue.mark_disconnected(entry_id)
    await queue.claim_next(staff("anna"))
    assert await queue.sweep(clock.now + 3600) == []
    assert (await queue.get(entry_id)).state == "called"


async def test_leave_on_purpose(queue, clock):
    entry_id = (await walk_in(queue)).entry.entry_id
    clock.now += 90
    assert await queue.leave(entry_id) is True
    assert await queue.leave(entry_id) is False
    [record] = await queue.log.records(datetime(2026, 3, 10).date(), datetime(2026, 3, 10).date(), "vhs")
    assert (record.outcome, record.wait_seconds) == ("abandoned", 90)


# --- outcomes and tickets ------------------------------------------------------------------------


async def test_finish_records_statistics(queue, clock):
    anna = staff("anna")
    ids = []
    for _ in range(3):
        ids.append((await walk_in(queue)).entry.entry_id)
        clock.now += 1
    results = {}
    for outcome in ("resolved", "ticket", "no_show"):
        clock.now += 60
        consultation = await queue.claim_next(anna)
        clock.now += 300
        results[outcome] = await queue.finish(anna, consultation.entry.entry_id, outcome, notes="Rückruf Di")
    assert results["ticket"].ticket.reference == "SP-2026-000001"
    assert results["ticket"].ticket.notes == "Rückruf Di" and results["ticket"].ticket.status == "open"
    assert results["resolved"].ticket is None
    day = datetime(2026, 3, 10).date()
    records = {r.entry_id: r for r in await queue.log.records(day, day)}
    assert [records[i].outcome for i in ids] == ["resolved", "ticket", "no_show"]
    assert [records[i].wait_seconds for i in ids] == [63, 422, 781]
    assert [records[i].handling_seconds for i in ids] == [300, 300, 300]
    assert records[ids[1]].ticket == "SP-2026-000001"
    assert (await queue.get(ids[1])).state == "done" and (await queue.get(ids[1])).ticket == "SP-2026-000001"
    assert await queue.log.records(day, day, "familienbuero") == []


async def test_finish_refusals_change_nothing(queue, store):
    entry_id = (await walk_in(queue)).entry.entry_id
    anna = staff("anna")
    await queue.claim_next(anna)
    for member, outcome, notes, code in (
        (anna, "great", None, "invalid_outcome"),
        (anna, "resolved", "x" * 2001, "notes_too_long"),
        (staff("ben"), "resolved", None, "not_claimed"),
    ):
        with pytest.raises(QueueError) as err:
            await queue.finish(member, entry_id, outcome, notes)
        assert err.value.code == code
    assert (await store.queue_item(QUEUE, entry_id)).claimed_by == "anna"
    assert await store.scan(CONSULTATION_KIND) == []
    assert await queue.tickets.for_office("vhs") == []


async def test_ticket_numbers_are_unique_under_concurrency(queue):
    tickets = await asyncio.gather(*(queue.tickets.open("vhs", f"Frage {n}") for n in range(60)))
    assert sorted(t.reference for t in tickets) == [f"SP-2026-{n:06d}" for n in range(1, 61)]
    assert len(await queue.tickets.for_office("vhs")) == 60


async def test_ticket_year_is_the_city_year(queue, clock):
    new_years_eve = datetime(2026, 12, 31, 23, 30, tzinfo=BERLIN)  # 22:30 UTC
    clock.now = new_years_eve.timestamp()
    assert (await queue.tickets.open("vhs", "a")).reference == "SP-2026-000001"
    clock.now = (new_years_eve + timedelta(hours=1)).timestamp()  # 2027 in Berlin, 2026 in UTC
    assert datetime.fromtimestamp(clock.now, UTC).year == 2026
    assert (await queue.tickets.open("vhs", "b")).reference == "SP-2027-000001"


async def test_ticket_status_and_office(queue):
    ticket = await queue.tickets.open("vhs", "Unterlagen nachreichen", created_by="anna")
    anna, fb = staff("anna"), staff("fb", "familienbuero")
    updated = await queue.tickets.update(anna, ticket.reference, status="in_progress")
    assert updated.status == "in_progress"
    assert (
        await queue.tickets.update(anna, ticket.reference, status="done", notes="erledigt")
    ).notes == "erledigt"
    for member, ref, status, code in (
        (fb, ticket.reference, "open", "forbidden_office"),
        (anna, ticket.reference, "closed", "invalid_status"),
        (anna, "SP-2026-999999", "open", "unknown_ticket"),
    ):
        with pytest.raises(QueueError) as err:
            await queue.tickets.update(member, ref, status=status)
        assert err.value.code == code
    assert (await queue.tickets.get(ticket.reference)).status == "done"
    assert [t.reference for t in await queue.tickets.for_office("vhs", "done")] == [ticket.reference]
    with pytest.raises(QueueError) as err:
        await queue.tickets.open("rathaus", "x")
    assert err.value.code == "unknown_office"


# --- restart ---------------------------------------------------------------------------------------


async def test_queue_and_tickets_survive_a_restart(tmp_path, clock):
    path = tmp_path / "durable.sqlite3"
    store = SQLiteStore(path, clock=clock)
    queue = make_service(store, clock)
    first = await walk_in(queue)
    clock.now += 1
    second = await walk_in(queue, note="bitte auf Englisch", language="en")
    clock.now += 1
    third = await walk_in(queue)
    consultation = await queue.claim_next(staff("anna"))
    ticket = await queue.tickets.open("vhs", "Rückfrage")
    await store.close()

    store = SQLiteStore(path, clock=clock)
    try:
        queue = make_service(store, clock)
        assert consultation.entry.entry_id == first.entry.entry_id
        assert (await queue.status(first.entry.entry_id)).state == "called"
        assert (await queue.entry_for_token(second.token)).note == "bitte auf Englisch"
        assert (await queue.status(third.entry.entry_id)).position == 1
        assert (await queue.tickets.get(ticket.reference)).notes == "Rückfrage"
        assert (await queue.tickets.open("vhs", "neu")).reference == "SP-2026-000002"
        outcome = await queue.finish(staff("anna"), first.entry.entry_id, "resolved")
        assert outcome.entry.state == "done"
        assert (
            await queue.claim_next(staff("anna", languages=("en",)))
        ).entry.entry_id == second.entry.entry_id
    finally:
        await store.close()


async def test_listeners_hear_every_stored_change_and_no_refusal(queue, clock):
    """The queue announces its own changes (no caller has to): join, note, claim, release, transfer,
    finish, leave, an advisor coming and going, an abandonment at the sweep; a refused request is
    not announced."""
    heard: list[int] = []

    async def listener() -> None:
        heard.append(1)

    queue.listen(listener)

    async def announced(action) -> int:
        before = len(heard)
        await action
        return len(heard) - before

    anna = staff("anna")
    first = await walk_in(queue)
    assert len(heard) == 1
    assert await announced(queue.set_note(first.entry.entry_id, "bitte langsam")) == 1
    assert await announced(queue.advisor_online(anna)) == 1
    assert await announced(queue.advisor_heartbeat(anna)) == 0  # a refresh, not a change
    consultation = await queue.claim_next(anna)
    assert len(heard) == 4 and consultation.entry.entry_id == first.entry.entry_id
    assert await announced(queue.release(anna, first.entry.entry_id)) == 1
    await queue.claim(anna, first.entry.entry_id)
    assert await announced(queue.transfer(anna, first.entry.entry_id, "vhs", note="weiter")) == 1
    await queue.claim(anna, first.entry.entry_id)
    assert await announced(queue.finish(anna, first.entry.entry_id, "resolved")) == 1
    with pytest.raises(QueueError):
        await queue.set_note(first.entry.entry_id, "zu spät")  # refused: nothing to announce
    assert await queue.claim_next(anna) is None
    second = await walk_in(queue)
    assert await announced(queue.leave(second.entry.entry_id)) == 1
    assert await announced(queue.leave(second.entry.entry_id)) == 0  # gone already
    third = await walk_in(queue)
    assert await announced(queue.sweep(clock.now + 3600)) == 1  # never connected: abandoned
    assert (await queue.get(third.entry.entry_id)).state == "abandoned"
    assert await announced(queue.advisor_offline("anna")) == 1


async def test_entries_of_other_versions_still_load(queue, store):
    """Tolerant loading (store.port.from_record): a field a newer version wrote is ignored, a field an
    older version did not write takes its default."""
    entry = (await walk_in(queue)).entry
    record = await store.get(ENTRY_KIND, entry.entry_id)
    newer = record | {"priority": "high"}
    older = {k: v for k, v in record.items() if k not in ("handover_note", "ticket", "advisor")}
    await store.put(ENTRY_KIND, entry.entry_id, newer)
    assert await queue.get(entry.entry_id) == entry
    await store.put(ENTRY_KIND, entry.entry_id, older)
    assert await queue.get(entry.entry_id) == entry
    assert (await queue.set_note(entry.entry_id, "neu")).note == "neu"  # and it can be changed
