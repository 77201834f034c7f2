"""The phone line with a real SIP client (Debian's baresip) over loopback: DTMF choices land the caller
in the right lane of the same queue as video citizens, hanging up while waiting abandons the place, after
hours a call-back ticket holds the calling number, and malformed messages and floods are refused."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time as clock
from dataclasses import replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bench.server import free_udp_and_tcp_port
from sprechstunde.rooms import hours
from sprechstunde.rooms.offices import load_offices
from sprechstunde.rooms.queue import ENTRY_KIND
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.phone import PHONE
from sprechstunde.web.core.services import SERVICES
from tests.phone_support import Baresip

pytestmark = pytest.mark.skipif(
    not (shutil.which("baresip") and shutil.which("espeak-ng")), reason="baresip and espeak-ng (./run test)"
)
BERLIN = ZoneInfo("Europe/Berlin")
NUMBER = "4921511234"


def _open_tuesday() -> datetime:
    offices = load_offices()
    day = datetime.now(BERLIN).date() + timedelta(days=1)
    while True:
        day += timedelta(days=(1 - day.weekday()) % 7)
        moment = datetime.combine(day, time(10), tzinfo=BERLIN)
        if all(hours.is_open(office, moment) for office in offices):
            return moment
        day += timedelta(days=1)


OPEN = _open_tuesday()
SUNDAY = OPEN + timedelta(days=5, hours=1)


@pytest.fixture
def sip_port() -> int:
    return free_udp_and_tcp_port()


@pytest.fixture
def config(tmp_path, sip_port) -> Config:
    return Config(
        data_dir=tmp_path / "data",
        media_addresses=["127.0.0.1"],
        demo=False,
        sip_listen=f"127.0.0.1:{sip_port}",
        sip_allow=["127.0.0.1/32"],
        sip_calls_per_minute=40,
        phone_announce_seconds=30,
    )


@pytest.fixture
async def app(aiohttp_client, config):
    client = await aiohttp_client(create_app(config))
    return client.app


@pytest.fixture
def caller(tmp_path):
    callers = []

    def make(**kwargs) -> Baresip:
        callers.append(Baresip(tmp_path / f"baresip{len(callers)}", **kwargs))
        return callers[-1]

    yield make
    for one in callers:
        one.close()


async def until(predicate, timeout: float = 20.0, what: str = ""):
    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")


async def phone_entries(services):
    from sprechstunde.rooms.entries import QueueEntry
    from sprechstunde.store.port import from_record

    records = await services.store.scan(ENTRY_KIND)
    return [e for e in (from_record(QueueEntry, r) for _, r in records) if e.channel == "phone"]


async def test_dtmf_choices_land_the_caller_in_the_lane_and_hanging_up_abandons(app, caller, sip_port):
    services = app[SERVICES]
    services.waiting.clock.set(OPEN)
    phone = caller(user=NUMBER)
    await phone.dial(f"sip:beratung@127.0.0.1:{sip_port}")
    await phone.established()
    await phone.press("2")  # English
    await asyncio.sleep(1.0)
    await phone.press("4")  # the fourth office offered in English: the registry office

    async def queued():
        entries = await phone_entries(services)
        return entries[0] if entries else None

    entry = await until(queued, what="the caller in the queue")
    assert (entry.office, entry.language, entry.channel, entry.state) == (
        "standesamt",
        "en",
        "phone",
        "waiting",
    )
    assert entry.lane == "standesamt:en:walk-in"  # the same lane as a video citizen's
    status = await services.queue.status(entry.entry_id)
    assert status.position == 1
    await asyncio.sleep(2)  # the place is kept while the call lasts (no waiting page needed)
    assert (await services.queue.get(entry.entry_id)).state == "waiting"

    phone.hangup()

    async def abandoned():
        current = await services.queue.get(entry.entry_id)
        return current.state == "abandoned"

    await until(abandoned, what="the entry abandoned")
    day = datetime.fromtimestamp(entry.enqueued_at, BERLIN).date()
    records = await services.queue.log.records(day, day, "standesamt")
    assert [(r.outcome, r.channel) for r in records] == [("abandoned", "phone")]


async def test_after_hours_a_callback_ticket_holds_the_number(app, caller, sip_port):
    services = app[SERVICES]
    services.waiting.clock.set(SUNDAY)
    phone = caller(user=NUMBER)
    await phone.dial(f"sip:beratung@127.0.0.1:{sip_port}")
    await phone.established()
    await phone.press("1")  # Deutsch
    await asyncio.sleep(1.0)
    await phone.press("1")  # Volkshochschule: closed on Sunday
    await asyncio.sleep(1.0)
    await phone.press("1")  # consent: call me back

    async def ticket():
        tickets = await services.queue.tickets.for_office("vhs")
        return tickets[0] if tickets else None

    found = await until(ticket, what="a call-back ticket")
    assert found.contact == NUMBER and found.source == "callback" and found.language == "de"
    assert await phone_entries(services) == []


async def test_malformed_messages_and_a_flood_are_refused_without_harm(app, caller, sip_port):
    services = app[SERVICES]
    services.waiting.clock.set(OPEN)
    endpoint = app[PHONE].endpoint
    endpoint.gate.settings = replace(endpoint.gate.settings, calls_per_minute=10)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.settimeout(2)
    target = ("127.0.0.1", sip_port)
    raw.sendto(b"\x00\xff garbage \r\n\r\n", target)
    raw.sendto(b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: broken\r\nCSeq: nonsense\r\n\r\n", target)
    own = raw.getsockname()[1]
    for n in range(60):
        raw.sendto(_invite(sip_port, own, n).encode(), target)
    answers = {}  # Call-ID → the final answer
    try:
        while True:
            reply = raw.recv(65535).decode(errors="replace")
            call_id = reply.split("Call-ID:", 1)[1].split("\r\n", 1)[0].strip() if "Call-ID:" in reply else ""
            if not reply.startswith("SIP/2.0 1"):
                answers[call_id] = reply.split("\r\n", 1)[0]
    except TimeoutError:
        pass
    finals = list(answers.values())
    # answered: only as many as PJSIP has call slots (4 in the wheel), the rest refused: 486 by PJSIP
    # itself while its slots are full, 503 by the gate over 10 new calls a minute
    assert sum("200" in a for a in finals) <= 10, finals
    assert sum(("503" in a) or ("486" in a) for a in finals) >= 45, finals
    # still answering: an OPTIONS ping gets its 200
    raw.sendto(_options(sip_port, own).encode(), target)
    reply = raw.recv(65535).decode(errors="replace")
    while reply.startswith("SIP/2.0 1") or "OPTIONS" not in reply.split("CSeq:", 1)[1][:30]:
        reply = raw.recv(65535).decode(errors="replace")
    assert reply.startswith("SIP/2.0 200")
    raw.close()
    assert endpoint.active_calls <= 10
    assert await phone_entries(services) == []  # nobody got as far as the queue


def _invite(port: int, own: int, n: int) -> str:
    body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
    return (
        f"INVITE sip:x@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{own};branch=z9hG4bKflood{n}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:flood@127.0.0.1>;tag=f{n}\r\n"
        f"To: <sip:x@127.0.0.1:{port}>\r\n"
        f"Call-ID: flood-{n}@127.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:flood@127.0.0.1:{own}>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )


def _options(port: int, own: int) -> str:
    return (
        f"OPTIONS sip:x@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{own};branch=z9hG4bKping\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:ping@127.0.0.1>;tag=p\r\n"
        f"To: <sip:x@127.0.0.1:{port}>\r\n"
        "Call-ID: ping@127.0.0.1\r\n"
        "CSeq: 7 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
