"""The waiting room's server side: POST /api/queue, GET /api/offices, /wait/{token}, and the two sockets
/ws/queue (citizen) and /ws/console (advisor), see docs/protocol.md."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from sprechstunde.rooms import hours
from sprechstunde.rooms.offices import load_offices
from sprechstunde.rooms.queue import WAIT_TOKEN_PURPOSE
from sprechstunde.web.core.services import SERVICES, RequestThrottle

BERLIN = ZoneInfo("Europe/Berlin")


def _open_tuesday() -> datetime:
    """The next Tuesday 10:00 in Berlin on which every demo office is open (no holiday, no closure).
    In the future, because waiting and join tokens expire by the real clock."""
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
PASSWORD = "richtig-langes-passwort"


@pytest.fixture
def services(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    return services


def origin(client) -> str:
    return str(client.make_url("")).rstrip("/")


async def enqueue(client, **body) -> dict:
    body = {"office": "vhs", "language": "de", "topic": "Sprachkurs"} | body
    response = await client.post("/api/queue", json=body)
    assert response.status == 201, await response.text()
    return await response.json()


def token_from(waiting_url: str) -> str:
    return waiting_url.rsplit("/wait/", 1)[1]


async def receive(ws, kind: str | None = None, timeout: float = 5.0) -> dict:
    """The next message (of `kind`, skipping others)."""
    while True:
        frame = await ws.receive(timeout=timeout)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        message = json.loads(frame.data)
        if kind is None or message["type"] == kind:
            return message


async def status_where(ws, **expected) -> dict:
    """Skip queue-status pushes until one matches `expected`."""
    while True:
        message = await receive(ws, "queue-status")
        if all(message.get(k) == v for k, v in expected.items()):
            return message


async def waiting_socket(client, token: str):
    ws = await client.ws_connect("/ws/queue")
    await ws.send_json({"type": "wait", "id": 1, "token": token})
    return ws


async def sign_in(client, services, name="berater", offices=("vhs",), languages=("de",)) -> None:
    await services.staff.add(name, PASSWORD, "advisor", list(offices), list(languages))
    response = await client.post("/api/login", json={"username": name, "password": PASSWORD})
    assert response.status == 200


async def console_socket(client):
    return await client.ws_connect("/ws/console", headers={"Origin": origin(client)})


async def test_citizens_wait_and_the_advisor_admits_the_first(client, services):
    first = await enqueue(client, note="B1, abends", transcript=[{"role": "bot", "text": "Worum geht es?"}])
    assert first["waiting_url"].startswith(services.config.public_url + "/wait/")
    assert first["status"]["position"] == 1 and first["status"]["state"] == "waiting"
    citizen1 = await waiting_socket(client, token_from(first["waiting_url"]))
    status = await receive(citizen1, "queue-status")
    assert status["position"] == 1 and status["entry_id"] == first["entry_id"]
    assert status["office"]["id"] == "vhs" and status["office"]["open_now"] is True
    assert status["note"] == "B1, abends"
    assert status["estimated_wait_seconds"] is None and status["language_available"] is False

    second = await enqueue(client, topic="Bildungsurlaub")
    citizen2 = await waiting_socket(client, token_from(second["waiting_url"]))
    assert (await receive(citizen2, "queue-status"))["position"] == 2

    await sign_in(client, services)
    console = await console_socket(client)
    listing = await receive(console, "queue")
    assert [e["entry_id"] for e in listing["entries"]] == [first["entry_id"], second["entry_id"]]
    head = listing["entries"][0]
    assert head["topic"] == "Sprachkurs" and head["language"] == "de" and head["note"] == "B1, abends"
    assert head["transcript"] == [{"role": "bot", "text": "Worum geht es?"}]
    assert head["appointment"] is None and head["waited_seconds"] >= 0
    assert listing["advisors_online"] == 1 and listing["you"]["username"] == "berater"
    # The advisor coming online reaches the waiting citizen: now there is an estimate; the first is taken
    # at once by the idle advisor (rooms/estimate.py), the second after them.
    online = await status_where(citizen1, language_available=True)
    assert online["advisors_online"] == 1 and online["estimated_wait_seconds"] == 0
    assert online["advisor_free"] is True and online["advisors_busy"] == 0

    await console.send_json({"type": "next", "id": "n1"})
    claimed = await receive(console, "claimed")
    assert claimed["id"] == "n1" and claimed["entry"]["entry_id"] == first["entry_id"]
    assert claimed["advisor_url"].startswith("/join/") and claimed["room_id"]
    assert (await client.get(claimed["advisor_url"])).status == 200

    admitted = await receive(citizen1, "admitted")
    assert admitted["room_id"] == claimed["room_id"]
    assert admitted["join_url"] == "/join/" + admitted["join_token"]
    closing = await citizen1.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1000
    assert (await status_where(citizen2, position=1))["position"] == 1
    # the console's list shrinks to the second citizen
    while [e["entry_id"] for e in (await receive(console, "queue"))["entries"]] != [second["entry_id"]]:
        pass

    page = await client.get(admitted["join_url"])
    assert page.status == 200
    call = await client.ws_connect("/ws")
    await call.send_json(
        {"type": "hello", "id": 1, "v": 1, "token": admitted["join_token"], "name": "Frau Y"}
    )
    welcome = await receive(call, "welcome")
    assert welcome["role"] == "citizen" and welcome["room_id"] == claimed["room_id"]
    for ws in (call, citizen2, console):
        await ws.close()


async def test_claim_one_particular_citizen_and_nobody_twice(client, services):
    first = await enqueue(client)
    second = await enqueue(client, topic="Zweites Anliegen")
    await sign_in(client, services)
    console = await console_socket(client)
    await receive(console, "queue")
    await console.send_json({"type": "claim", "id": 1, "entry_id": second["entry_id"]})
    claimed = await receive(console, "claimed")
    assert claimed["entry"]["entry_id"] == second["entry_id"]
    await console.send_json({"type": "claim", "id": 2, "entry_id": second["entry_id"]})
    again = await receive(console, "error")
    assert again["code"] == "not_waiting" and again["id"] == 2
    # a reloaded waiting page of the claimed citizen is admitted at once
    citizen = await waiting_socket(client, token_from(second["waiting_url"]))
    assert (await receive(citizen))["type"] == "admitted"
    await console.send_json({"type": "next", "id": 3})
    assert (await receive(console, "claimed"))["entry"]["entry_id"] == first["entry_id"]
    await console.send_json({"type": "next", "id": 4})
    empty = await receive(console, "error")
    assert empty == {"type": "error", "id": 4, "code": "queue_empty", "message": "nobody is waiting for you"}
    await console.close()


async def test_console_refuses_without_session_or_from_another_origin(client, services):
    anonymous = await console_socket(client)
    refused = await receive(anonymous)
    assert refused["type"] == "error" and refused["code"] == "not_authenticated"
    closing = await anonymous.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4401

    await sign_in(client, services)
    for headers in ({"Origin": "https://evil.example"}, {}):
        foreign = await client.ws_connect("/ws/console", headers=headers)
        refused = await receive(foreign)
        assert refused["code"] == "forbidden_origin"
        closing = await foreign.receive(timeout=5)
        assert closing.data == 4403
    # nobody came online through the refused sockets
    assert await services.queue.presence.advisors() == []

    await services.staff.add("admin1", PASSWORD, "admin", ["vhs"])
    await client.post("/api/login", json={"username": "admin1", "password": PASSWORD})
    admin = await console_socket(client)
    assert (await receive(admin))["code"] == "forbidden_role"


async def test_advisor_is_online_while_the_console_is_open(client, services):
    await sign_in(client, services)
    console = await console_socket(client)
    await receive(console, "queue")
    assert [a.username for a in await services.queue.presence.advisors()] == ["berater"]
    await console.close()
    for _ in range(50):
        if not await services.queue.presence.advisors():
            break
        await asyncio.sleep(0.02)
    assert await services.queue.presence.advisors() == []


async def test_advisors_coming_and_going_elsewhere_reach_the_waiting_citizen(client, services):
    """Presence set or expired without a console socket in this process (another node, a dead laptop)
    is noticed by the sweep and pushed to the waiting page."""
    entry = await enqueue(client)
    citizen = await waiting_socket(client, token_from(entry["waiting_url"]))
    assert (await receive(citizen, "queue-status"))["advisors_online"] == 0
    await services.waiting.sweep()  # the first sweep only takes note
    await services.staff.add("fern", PASSWORD, "advisor", ["vhs"], ["de"])
    await services.queue.presence.online(await services.staff.get("fern"))
    await services.waiting.sweep()
    assert (await status_where(citizen, advisors_online=1))["language_available"] is True
    await services.queue.presence.offline("fern")  # as if the presence record expired
    await services.waiting.sweep()
    assert (await status_where(citizen, advisors_online=0))["estimated_wait_seconds"] is None
    await citizen.close()


async def test_console_ends_with_the_session(client, services):
    await sign_in(client, services)
    console = await console_socket(client)
    await receive(console, "queue")
    session_id = client.session.cookie_jar.filter_cookies(client.make_url("/"))["sprechstunde_session"].value
    await services.staff.close_session(session_id)
    await console.send_json({"type": "next", "id": 1})
    assert (await receive(console))["code"] == "not_authenticated"
    assert (await console.receive(timeout=5)).data == 4401


async def test_claiming_a_citizen_of_another_office_changes_nothing(client, services):
    other = await enqueue(client, office="standesamt", topic="Geburtsurkunde")
    await sign_in(client, services, offices=("vhs",))
    console = await console_socket(client)
    assert (await receive(console, "queue"))["entries"] == []
    for entry_id, code in ((other["entry_id"], "forbidden_office"), ("no-such-entry", "unknown_entry")):
        await console.send_json({"type": "claim", "id": 7, "entry_id": entry_id})
        error = await receive(console, "error")
        assert error["code"] == code and error["id"] == 7
    status = await services.queue.status(other["entry_id"])
    assert status.state == "waiting" and status.position == 1
    await console.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1]", "bad_json"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "wait"}', "bad_message"),
        ('{"type": "wait", "token": 7}', "bad_message"),
        ('{"type": "wait", "token": "forged.token"}', "invalid_token"),
        ('{"type": "note", "text": "hallo"}', "not_waiting"),
        ('{"type": "leave"}', "not_waiting"),
    ],
)
async def test_bad_waiting_frames_get_an_error_and_the_socket_stays_usable(client, services, frame, code):
    entry = await enqueue(client)
    ws = await client.ws_connect("/ws/queue")
    await ws.send_str(frame)
    error = await receive(ws)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await ws.send_json({"type": "ping", "id": "alive"})
    assert await receive(ws) == {"type": "pong", "id": "alive"}
    await ws.send_json({"type": "wait", "token": token_from(entry["waiting_url"])})
    assert (await receive(ws))["position"] == 1
    await ws.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{", "bad_json"),
        ('{"type": "claim"}', "bad_message"),
        ('{"type": "claim", "entry_id": ["x"]}', "bad_message"),
        ('{"type": "leave"}', "unknown_type"),
    ],
)
async def test_bad_console_frames_get_an_error(client, services, frame, code):
    await sign_in(client, services)
    console = await console_socket(client)
    await receive(console, "queue")
    await console.send_str(frame)
    assert (await receive(console, "error"))["code"] == code
    await console.send_json({"type": "ping", "id": 5})
    assert await receive(console, "pong") == {"type": "pong", "id": 5}
    await console.close()


async def test_waiting_tokens_forged_expired_or_unknown(client, services):
    entry = await enqueue(client)
    token = token_from(entry["waiting_url"])
    expired = services.signer.sign(WAIT_TOKEN_PURPOSE, {"e": entry["entry_id"], "exp": 1})
    unknown = services.signer.sign(WAIT_TOKEN_PURPOSE, {"e": "nobody", "exp": 4_000_000_000})
    join_token = services.signer.join_token("room", "citizen", 4_000_000_000)
    cases = [
        (token[:-3] + "abc", 403, "invalid_token"),
        (expired, 410, "expired"),
        (unknown, 404, "unknown_entry"),
    ]
    cases.append((join_token, 403, "invalid_token"))  # a join link is no waiting-room link
    for bad, status, code in cases:
        page = await client.get(f"/wait/{bad}", headers={"Accept-Language": "de"})
        assert page.status == status
        assert "Traceback" not in await page.text()
        ws = await waiting_socket(client, bad)
        assert (await receive(ws))["code"] == code
        await ws.close()
    assert (await services.queue.status(entry["entry_id"])).position == 1


async def test_waiting_page_gets_entry_office_and_strings(client, services):
    entry = await enqueue(client, topic="Sprachkurs <B1>")
    token = token_from(entry["waiting_url"])
    seen = {}
    render = services.pages.render

    def capture(request, template, status=200, **context):
        seen.update(context, template=template)
        return render(request, template, status, **context)

    services.pages.render = capture
    page = await client.get(f"/wait/{token}", headers={"Accept-Language": "en"})
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert seen["template"] == "waiting.html" and seen["waiting_token"] == token
    assert seen["entry"]["entry_id"] == entry["entry_id"] and seen["entry"]["position"] == 1
    assert seen["entry"]["topic"] == "Sprachkurs <B1>" and "transcript" not in seen["entry"]
    assert seen["office"]["id"] == "vhs" and seen["office"]["name"] == "Adult Education Centre"
    assert seen["office"]["hours_text"].startswith("Mon 08:00–17:00")
    assert seen["strings"] and all(k.startswith(("wait.", "call.")) for k in seen["strings"])
    html = await page.text()
    assert "Adult Education Centre" in html and "Sprachkurs <B1>" not in html


async def test_note_and_leave(client, services):
    entry = await enqueue(client)
    ws = await waiting_socket(client, token_from(entry["waiting_url"]))
    await receive(ws, "queue-status")
    await ws.send_json({"type": "note", "id": 2, "text": "  Formular Bildungsurlaub  "})
    assert (await status_where(ws, note="Formular Bildungsurlaub"))["position"] == 1
    await ws.send_json({"type": "note", "id": 3, "text": "x" * 501})
    assert (await receive(ws, "error"))["code"] == "note_too_long"
    await ws.send_json({"type": "wait", "id": 4, "token": token_from(entry["waiting_url"])})
    assert (await receive(ws, "error"))["code"] == "already_waiting"
    await ws.send_json({"type": "leave"})
    assert await receive(ws, "removed") == {"type": "removed", "reason": "left"}
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1000
    assert (await services.queue.get(entry["entry_id"])).state == "abandoned"


async def test_a_disconnected_citizen_is_abandoned_after_the_grace(client, services):
    first = await enqueue(client)
    second = await enqueue(client)
    gone = await waiting_socket(client, token_from(first["waiting_url"]))
    await receive(gone, "queue-status")
    stays = await waiting_socket(client, token_from(second["waiting_url"]))
    assert (await receive(stays, "queue-status"))["position"] == 2
    await gone.close()
    for _ in range(50):  # the server notices the close and starts the grace
        if await services.store.get("queue-deadline", first["entry_id"]):
            break
        await asyncio.sleep(0.02)
    assert await services.waiting.sweep() == []
    services.waiting.clock.offset += services.queue.grace + 1
    assert await services.waiting.sweep() == [first["entry_id"]]
    assert (await status_where(stays, position=1))["position"] == 1
    again = await waiting_socket(client, token_from(first["waiting_url"]))
    assert await receive(again) == {"type": "removed", "reason": "abandoned"}
    await stays.close()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"office": "zoo", "language": "de", "topic": "x"}, 400, "unknown_office"),
        ({"office": 7, "language": "de", "topic": "x"}, 400, "unknown_office"),
        ({"office": "standesamt", "language": "tr", "topic": "x"}, 400, "unknown_language"),
        ({"language": "xx", "topic": "x"}, 400, "unknown_language"),
        ({"office": "vhs", "language": "de"}, 400, "invalid_topic"),
        ({"office": "vhs", "language": "de", "topic": "x", "note": ""}, 400, "empty_note"),
        (
            {"office": "vhs", "language": "de", "topic": "x", "transcript": [{"role": "x"}]},
            400,
            "invalid_transcript",
        ),
    ],
)
async def test_bad_enqueue_gets_a_clear_error_and_changes_nothing(client, services, body, status, code):
    response = await client.post("/api/queue", json=body)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code
    assert await services.store.queued("waiting-room", ["vhs:de:walk-in", "standesamt:tr:walk-in"]) == []


async def test_enqueue_needs_a_json_object(client, services):
    response = await client.post("/api/queue", data="{", headers={"Content-Type": "application/json"})
    assert response.status == 400 and (await response.json())["error"]["code"] == "bad_json"


async def test_without_office_the_language_picks_one(client, services):
    entry = await enqueue(client, office=None, language="ku")
    assert entry["office"]["id"] == "buergertelefon"
    response = await client.post("/api/queue", json={"language": "xx", "topic": "x"})
    assert (await response.json())["error"]["languages"]


async def test_closed_office_refuses_walk_ins_with_the_next_opening(client, services):
    services.waiting.clock.set(SUNDAY)
    response = await client.post("/api/queue", json={"office": "vhs", "language": "de", "topic": "x"})
    assert response.status == 409
    error = (await response.json())["error"]
    assert error["code"] == "closed"
    opening = datetime.fromisoformat(error["next_opening"])
    assert opening > SUNDAY and opening.astimezone(BERLIN).time() == time(8)
    offices = {o["id"]: o for o in (await (await client.get("/api/offices")).json())["offices"]}
    assert offices["vhs"]["open_now"] is False and offices["vhs"]["next_opening"]


async def test_offices_for_the_start_page(client, services):
    response = await client.get("/api/offices")
    offices = {o["id"]: o for o in (await response.json())["offices"]}
    assert set(offices) == {"vhs", "familienbuero", "buergertelefon", "standesamt"}
    vhs = offices["vhs"]
    assert vhs["names"] == {"de": "Volkshochschule", "en": "Adult Education Centre"}
    assert vhs["open_now"] is True and vhs["next_opening"] is None
    assert datetime.fromisoformat(vhs["closes_at"]) == OPEN.replace(hour=17)
    assert vhs["hours"][0] == {"day": "mon", "intervals": ["08:00–17:00"]}
    assert offices["standesamt"]["languages"] == ["de", "en"]


async def test_enqueue_is_rate_limited_per_address(client, services):
    services.queue_throttle = RequestThrottle(per_network=2)
    await enqueue(client)
    await enqueue(client)
    response = await client.post("/api/queue", json={"office": "vhs", "language": "de", "topic": "x"})
    assert response.status == 429 and (await response.json())["error"]["code"] == "rate_limited"


async def test_waiting_socket_floods_are_closed(client, services):
    ws = await client.ws_connect("/ws/queue")
    for _ in range(300):
        await ws.send_str('{"type": "ping"}')
    while True:
        frame = await ws.receive(timeout=5)
        if frame.type != aiohttp.WSMsgType.TEXT:
            break
    assert frame.type == aiohttp.WSMsgType.CLOSE and frame.data == 1008
