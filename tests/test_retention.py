"""Issue 15, finding 7: personal data outlives its retention. Every row of the retention table in
SECURITY.md is checked here against the real app, on SQLite and on Redis: the data is created with unique
markers through the real services/API, the clock is moved past the time the row states (in bold), the
retention jobs run, and then no file under the data directory (the SQLite file, its WAL, blobs) holds a
marker any more, and every Redis key still holding one expires by itself within the stated time. A row
without a check here fails, and so does a check without a row."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

import sprechstunde.web.core.app as web_app
from sprechstunde.clock import Clock
from sprechstunde.rooms.consultations import CONSULTATION_KIND
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.scheduling.availability import parse_availability
from sprechstunde.store import RedisStore, SQLiteStore
from sprechstunde.web.core.app import RETENTION, create_app
from sprechstunde.web.core.config import DATABASE_FILE, Config
from sprechstunde.web.core.services import SERVICES
from tests.scheduling_support import FULL, PASSWORD
from tests.test_booking_api import TUESDAY, at
from tests.test_store import REDIS_URL, redis_namespace
from tests.test_waiting_api import OPEN

SECURITY_MD = Path(__file__).parent.parent / "SECURITY.md"
UNITS = {"s": 1, "h": 3600, "d": 86400}
SLACK = 120.0  # past the stated time: more than any rounding, less than any retention


@dataclass(frozen=True)
class Row:
    name: str
    text: str
    seconds: float | None  # the bold "**N unit**" of "When it goes"; None: not time-bound


def table() -> list[Row]:
    rows = []
    section = SECURITY_MD.read_text().split("## Personal data and retention", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        match = re.match(r"^\|\s*`([a-z-]+)`\s*\|", line)
        if not match:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"SECURITY.md: row {match[1]} needs 4 cells: {line}"
        when = re.search(r"\*\*(\d+) (s|h|d)\*\*", cells[3])
        rows.append(Row(match[1], line, int(when[1]) * UNITS[when[2]] if when else None))
    return rows


@dataclass
class Harness:
    backend: str
    client: object
    clock: Clock
    data_dir: Path
    prefix: str | None = None

    @property
    def app(self):
        return self.client.app

    @property
    def services(self):
        return self.app[SERVICES]

    def travel(self, seconds: float) -> None:
        self.clock.offset += seconds

    async def kept_until(self, seconds: float, *markers: str) -> None:
        """The markers are stored now and gone from storage `seconds` later (plus one sweep's slack)."""
        await self.assert_stored(*markers)
        self.travel(seconds + SLACK)
        await self.sweep()
        await self.assert_gone(seconds, *markers)

    async def sweep(self) -> None:
        """Every retention job the app runs: documents, appointment data (the mail job), then the sweep
        (tickets, expired records, WAL)."""
        await self.services.documents.run_due()
        await self.services.booking_mailer.run_once()
        await self.app[RETENTION].run_once()

    async def holders(self, marker: str) -> dict[str, float | None]:
        """Where `marker` is stored: files under the data directory (no expiry: None) and Redis keys
        (their remaining time to live in seconds; None: none)."""
        found: dict[str, float | None] = {}
        needle = marker.encode()
        for path in self.data_dir.rglob("*"):
            if path.is_file() and needle in path.read_bytes():
                found[str(path)] = None
        if self.prefix is not None:
            client = Redis.from_url(REDIS_URL, decode_responses=True)
            try:
                async for key in client.scan_iter(match=self.prefix + "*"):
                    kind = await client.type(key)
                    if kind == "string" and marker in (await client.get(key) or ""):
                        found[key] = await _ttl(client, key)
                    elif kind == "zset" and key.startswith(self.prefix + "i:"):
                        # an index entry stays until its record is gone: it lives as long as the record
                        record_prefix = self.prefix + "r:" + key[len(self.prefix) + 2 :] + ":"
                        for member in await client.zrange(key, 0, -1):
                            if marker in member:
                                found[key + "/" + member] = await _ttl(client, record_prefix + member)
                    elif kind == "hash" and any(marker in v for v in (await client.hgetall(key)).values()):
                        found[key] = await _ttl(client, key)
            finally:
                await client.aclose()
        return found

    async def assert_stored(self, *markers: str) -> None:
        for marker in markers:
            assert await self.holders(marker), f"{marker} was never stored: the check would prove nothing"

    async def assert_gone(self, seconds: float, *markers: str) -> None:
        """No file holds a marker; a Redis key may, only if it expires by itself within `seconds`."""
        for marker in markers:
            for where, ttl in (await self.holders(marker)).items():
                assert ttl is not None and 0 < ttl <= seconds, f"{marker} still in {where} (ttl {ttl})"


async def _ttl(client: Redis, key: str) -> float | None:
    ms = await client.pttl(key)
    return None if ms < 0 else ms / 1000


def marker(label: str = "m") -> str:
    return f"{label}{uuid.uuid4().hex[:20]}"


@pytest.fixture(params=["sqlite", "redis"])
async def harness(request, aiohttp_client, tmp_path, monkeypatch):
    clock = Clock()
    # One movable clock for the queue, tickets, bookings, documents and the store's expiry.
    monkeypatch.setattr(web_app, "Clock", lambda: clock)
    monkeypatch.setattr(web_app, "build_documents", functools.partial(web_app.build_documents, clock=clock))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = Config(data_dir=data_dir, media_addresses=["127.0.0.1"], demo=False)
    if request.param == "sqlite":
        store = SQLiteStore(data_dir / DATABASE_FILE, clock=clock)
        yield Harness("sqlite", await aiohttp_client(create_app(config, store)), clock, data_dir)
        return
    async with redis_namespace() as prefix:
        config.redis_url, config.redis_prefix = REDIS_URL, prefix
        store = RedisStore(REDIS_URL, prefix=prefix, clock=clock)
        yield Harness("redis", await aiohttp_client(create_app(config, store)), clock, data_dir, prefix)


ADVISOR = StaffMember("berater", "advisor", ["vhs"], languages=["de"])


async def _enqueue(h: Harness) -> tuple[dict, list[str]]:
    h.clock.set(OPEN)
    topic, note, said = marker("topic"), marker("note"), marker("said")
    response = await h.client.post(
        "/api/queue",
        json={
            "office": "vhs",
            "language": "de",
            "topic": f"Anmeldung {topic}",
            "note": f"Ich heiße {note}",
            "transcript": [{"role": "citizen", "text": f"Frage {said}"}],
        },
    )
    assert response.status == 201, await response.text()
    return await response.json(), [topic, note, said]


async def check_waiting_entry(h: Harness, row: Row) -> None:
    _, markers = await _enqueue(h)
    await h.kept_until(row.seconds, *markers)


async def check_chat_conversation(h: Harness, row: Row) -> None:
    said = marker("chat")
    response = await h.client.post("/api/chatbot/messages", json={"text": f"Personalausweis {said}"})
    assert response.status == 200, await response.text()
    await h.kept_until(row.seconds, said)


async def check_staff_session(h: Harness, row: Row) -> None:
    await h.services.staff.add("berater", PASSWORD, "advisor", ["vhs"])
    session_id = await h.services.staff.open_session(ADVISOR)
    await h.kept_until(row.seconds, session_id)


async def check_advisor_presence(h: Harness, row: Row) -> None:
    name = marker("adv")
    await h.services.queue.advisor_online(StaffMember(name, "advisor", ["vhs"], languages=["de"]))
    await h.kept_until(row.seconds, name)


async def check_room(h: Harness, row: Row) -> None:
    creator = marker("staff")
    await h.services.rooms.create("vhs", 3600, created_by=creator)
    await h.kept_until(3600 + row.seconds, creator)  # counted from the links' expiry


async def check_call_chat(h: Harness, row: Row) -> None:
    said, name = marker("said"), marker("name")
    room = await h.services.rooms.create("vhs", 3600)
    message = {"message_id": "m-1", "from": "p-1", "name": name, "role": "citizen", "text": f"Hallo {said}"}
    await h.services.hub.history.append(room.room_id, room.expires_at, message)
    await h.kept_until(3600 + row.seconds, said, name)  # counted from the links' expiry


async def check_ticket(h: Harness, row: Row) -> None:
    question, contact, topic = marker("question"), marker("contact"), marker("topic")
    response = await h.client.post(
        "/api/questions",
        json={
            "office": "vhs",
            "language": "de",
            "topic": f"Wohngeld {topic}",
            "question": f"Mein Name ist {question}",
            "contact": f"{contact}@example.org",
        },
    )
    assert response.status == 201, await response.text()
    reference = (await response.json())["reference"]
    tickets = h.services.queue.tickets
    # Open tickets keep their text however old they are: the office still owes an answer.
    h.travel(row.seconds + SLACK)
    await h.sweep()
    await h.assert_stored(question, contact, topic)
    await tickets.update(ADVISOR, reference, status="done")
    h.travel(row.seconds - 3600)
    await h.sweep()
    await h.assert_stored(question, contact, topic)  # not before its time
    h.travel(3600 + SLACK)
    await h.sweep()
    await h.assert_gone(0, question, contact, topic)
    kept = await tickets.get(reference)  # the bare record stays for statistics
    assert kept is not None and kept.status == "done" and kept.office == "vhs" and kept.erased_at
    assert (kept.notes, kept.contact, kept.topic) == ("", None, None)


async def check_booking(h: Harness, row: Row) -> None:
    h.clock.set(at("12:00", TUESDAY - timedelta(days=1)))
    services = h.services
    await services.staff.add("anna", PASSWORD, "advisor", ["vhs"], ["de"])
    await services.scheduling.availability.set(parse_availability("anna", {"weekly": FULL}))
    name, email = marker("name"), marker("mail")
    booked = await services.scheduling.book(
        "vhs",
        "weiterbildung",
        "video",
        at("08:00").isoformat(),
        name=f"Erika {name}",
        email=f"{email}@example.org",
        phone="+49 221 1234567",
        consent=True,
        idempotency_key=marker("idem"),
    )
    await h.assert_stored(name, email, "1234567")
    h.travel(booked.booking.ends_at - h.clock() + row.seconds + SLACK)
    await h.sweep()
    await h.assert_gone(0, name, email, "1234567")
    kept = await services.scheduling.get(booked.booking.booking_id)
    assert kept is not None and kept.reference == booked.booking.reference


async def _upload(h: Harness) -> tuple[str, Path, list[str]]:
    room = await h.services.rooms.create("vhs", 3600)
    links = h.services.rooms.links(room, "http://test").as_json()
    token = links["citizen_url"].rsplit("/join/", 1)[1]
    name, content = marker("file"), marker("content")
    response = await h.client.post(
        f"/api/rooms/{room.room_id}/documents",
        data=b"%PDF-1.7\n" + content.encode() * 50 + b"\n%%EOF\n",
        headers={"X-Join-Token": token, "X-File-Name": f"{name}.pdf", "Content-Type": "application/pdf"},
    )
    assert response.status == 201, await response.text()
    document_id = (await response.json())["id"]
    return document_id, h.services.documents.blobs / document_id[:2] / document_id, [name, content]


async def check_document(h: Harness, row: Row) -> None:
    document_id, blob, markers = await _upload(h)
    assert blob.exists()
    await h.assert_gone(0, *markers)  # encrypted at rest: never readable, not even now
    h.travel(3600 + row.seconds + SLACK)
    await h.sweep()
    assert not blob.exists()
    record = await h.services.store.get("doc", document_id)
    assert record is not None and "key" not in record and "meta" not in record  # no key, no name


async def check_document_metadata(h: Harness, row: Row) -> None:
    document_id, _, _ = await _upload(h)
    await h.assert_stored(document_id)
    h.travel(3600 + row.seconds + SLACK)
    await h.sweep()
    await h.assert_gone(0, document_id)


async def check_staff_account(h: Harness, row: Row) -> None:
    password = marker("password")
    await h.services.staff.add("berater", password, "advisor", ["vhs"])
    await h.assert_gone(0, password)  # only its scrypt hash is stored
    assert row.seconds is None and await h.services.staff.get("berater") is not None


async def check_statistics(h: Harness, row: Row) -> None:
    _, markers = await _enqueue(h)
    queue = h.services.queue
    consultation = await queue.claim_next(ADVISOR)
    assert consultation is not None
    await queue.finish(ADVISOR, consultation.entry.entry_id, "resolved")
    records = await h.services.store.scan(CONSULTATION_KIND)
    assert records and not any(m in str(records) for m in markers)
    h.travel(24 * 3600 + SLACK)
    await h.sweep()
    await h.assert_gone(24 * 3600, *markers)
    assert await h.services.store.scan(CONSULTATION_KIND) == records  # the statistics stay


async def check_logs(h: Harness, row: Row, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, markers = await _enqueue(h)
    said = marker("chat")
    await h.client.post("/api/chatbot/messages", json={"text": f"Personalausweis {said}"})
    question = marker("question")
    await h.client.post(
        "/api/questions",
        json={"office": "vhs", "language": "de", "topic": "x", "question": question, "contact": "a@b.de"},
    )
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for m in [*markers, said, question]:
        assert m not in text


CHECKS: dict[str, Callable[..., Awaitable[None]]] = {
    "waiting-entry": check_waiting_entry,
    "chat-conversation": check_chat_conversation,
    "staff-session": check_staff_session,
    "advisor-presence": check_advisor_presence,
    "room": check_room,
    "ticket": check_ticket,
    "booking": check_booking,
    "document": check_document,
    "document-metadata": check_document_metadata,
    "staff-account": check_staff_account,
    "statistics": check_statistics,
    "logs": check_logs,
    "call-chat": check_call_chat,
}


def test_every_row_of_the_table_has_a_check_and_every_check_a_row():
    names = [row.name for row in table()]
    assert len(names) == len(set(names)), "SECURITY.md: a row appears twice"
    assert sorted(names) == sorted(CHECKS), "SECURITY.md and tests/test_retention.py list other rows"


@pytest.mark.parametrize("row", table(), ids=lambda row: row.name)
async def test_retention_row(row: Row, harness: Harness, caplog):
    check = CHECKS.get(row.name)
    assert check is not None, f"SECURITY.md row {row.name} has no check in tests/test_retention.py"
    if check is check_logs:
        await check(harness, row, caplog)
    else:
        await check(harness, row)


async def test_sqlite_deletes_expired_rows_and_leaves_no_copy_in_the_file(tmp_path):
    """The store on its own: an expired record is deleted by `purge_expired` (and at open), its text is
    overwritten in the file and gone from the WAL."""
    clock = Clock()
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path, clock=clock)
    note = marker("note")
    await store.put("queue-entry", "e1", {"note": note}, ttl=60)
    await store.put("staff", "keep", {"name": "stays"})
    clock.offset += 61
    assert await store.get("queue-entry", "e1") is None
    assert await store.purge_expired() == 1
    files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert not any(note.encode() in p.read_bytes() for p in files), files
    assert await store.get("staff", "keep") == {"name": "stays"}
    # and at open: a record that expired while no process ran goes at the next start
    await store.put("queue-entry", "e2", {"note": note}, ttl=60)
    await store.close()
    clock.offset += 61
    store = SQLiteStore(path, clock=clock)
    assert not any(note.encode() in p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    await store.close()


async def test_redis_purge_drops_index_entries_of_expired_records():
    async with redis_namespace() as prefix:
        store = RedisStore(REDIS_URL, prefix=prefix)
        try:
            session = marker("session")
            await store.put("staff-session", session, {"username": "x"}, ttl=0.05)
            client = Redis.from_url(REDIS_URL, decode_responses=True)
            try:
                await asyncio.sleep(0.2)
                assert await store.purge_expired() >= 1
                assert await client.zrange(prefix + "i:staff-session", 0, -1) == []
            finally:
                await client.aclose()
        finally:
            await store.close()
