"""Issue 15, findings 1, 15 and 16 — what the log, a WebSocket during an outage and every response show.

- Finding 1: no capability token (booking manage and join links, .ics, waiting page, download URL, join
  link) appears in any log line, in either log format, also while the store is unreachable.
- Finding 15: during a Redis outage a new WebSocket is closed with 1013 "try again later" and a reason,
  never answered with an HTTP 503 written into the upgraded connection.
- Finding 16: redirects and errors carry the security headers; 405 carries `Allow`.
"""

from __future__ import annotations

import io
import json
import logging
import re
import signal
from datetime import timedelta
from html import unescape
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.observability import AccessLogger, loggable_path, mask_tokens, setup_logging
from sprechstunde.web.core.security import HEADERS
from sprechstunde.web.core.services import SERVICES, SESSION_COOKIE
from tests.conftest import token_of
from tests.test_booking_api import TUESDAY, advisor, at, request
from tests.test_booking_pages import booking_form, form_page
from tests.test_documents import PDF
from tests.test_readiness import RedisServer, redis_config
from tests.test_waiting_api import PASSWORD

# --- finding 1: tokens in the log ------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def log_buffer(request):
    """Root logging as `serve --log-format <param>` sets it up, written into a buffer instead of stderr."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("debug", request.param)
    buffer = io.StringIO()
    ours = root.handlers[0]
    assert isinstance(ours, logging.StreamHandler)
    ours.setStream(buffer)
    yield buffer
    root.removeHandler(ours)
    for handler in saved[0]:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved[1])


def _parts(token: str) -> list[str]:
    """The token and its two halves: neither the claims nor the signature may be logged on its own."""
    body, _, signature = token.partition(".")
    return [token, body, signature] if signature else [token]


@pytest.mark.parametrize("log_buffer", ["text", "json"], indirect=True)
async def test_no_token_reaches_the_log_through_a_whole_flow_and_an_outage(
    aiohttp_client, tmp_path, redis_server, log_buffer
):
    """Issue 15, finding 1: booking (API and form), manage page, .ics, join link, waiting page and socket,
    consultation join link, document download URL — then the same links while Redis is down — and not one
    token (nor its claims or signature half) is in the log."""
    app = create_app(redis_config(tmp_path, redis_server))
    server = TestServer(app)
    await server.start_server(access_log_class=AccessLogger)  # as `serve` runs it
    client = await aiohttp_client(server)
    services = client.app[SERVICES]
    services.waiting.clock.set(at("12:00", TUESDAY - timedelta(days=1)))
    await advisor(services)
    tokens: dict[str, str] = {}

    async def visit(method: str, path: str, *statuses: int, **kw) -> aiohttp.ClientResponse:
        response = await client.request(method, path, allow_redirects=False, **kw)
        assert not statuses or response.status in statuses, (path, response.status, await response.text())
        return response

    # an appointment booked through the API …
    booked = await (await visit("POST", "/api/bookings", 201, json=request())).json()
    manage, join = booked["manage_token"], booked["join_url"].rsplit("/", 1)[1]
    tokens |= {"manage": manage, "join": join}
    # … and one through the form, whose confirmation is a redirect to the manage page
    slot = f"/termin/vhs/weiterbildung/video?tag={TUESDAY}&zeit={quote(at('09:20').isoformat())}"
    form = await (await visit("GET", slot, 200)).text()
    tokens["form nonce"] = booking_form(form)["nonce"]
    posted = await visit("POST", "/termin/vhs/weiterbildung/video", 303, data=booking_form(form))
    form_manage = urlsplit(posted.headers["Location"]).path.rsplit("/", 1)[1]
    tokens["form manage"] = form_manage
    page = await (await visit("GET", posted.headers["Location"], 200)).text()
    form_join = re.search(r'href="/termin/beitreten/([^"?#]+)"', page).group(1)
    tokens["form join"] = unescape(form_join)

    for token in (manage, form_manage):
        await visit("GET", f"/api/bookings/{token}", 200)
        await visit("GET", f"/api/bookings/{token}/ics", 200)
        await visit("GET", f"/termin/verwalten/{token}", 200)
        await visit("GET", f"/termin/verwalten/{token}/termin.ics", 200)
        await visit("GET", f"/termin/verwalten/{token}/verschieben", 200)
        await visit("GET", f"/api/bookings/{token}=", 403, 404)  # a non-canonical variant
    await visit("GET", f"/termin/beitreten/{join}", 200)  # the countdown
    await visit("GET", f"/api/bookings/join/{join}", 200)
    services.waiting.clock.set(at("07:55"))  # the join link opens: the waiting room
    opened = await (await visit("GET", f"/api/bookings/join/{join}", 200)).json()
    wait = opened["waiting_url"].rsplit("/wait/", 1)[1]
    tokens["wait"] = wait
    await visit("GET", f"/wait/{wait}", 200)
    socket = await client.ws_connect("/ws/queue")
    await socket.send_json({"type": "wait", "id": 1, "token": wait})
    while (await socket.receive_json(timeout=10))["type"] != "queue-status":
        pass
    await socket.close()
    services.waiting.clock.set(at("09:15"))  # the form's appointment: its join link redirects
    redirected = await visit("GET", f"/termin/beitreten/{form_join}", 303)
    tokens["form wait"] = redirected.headers["Location"].rsplit("/wait/", 1)[1]
    await visit("GET", redirected.headers["Location"], 200)

    # a consultation room: join link, document upload, download URL
    room = await services.rooms.create("vhs", 3600)
    links = services.rooms.links(room, "").as_json()
    citizen, staff = token_of(links["citizen_url"]), token_of(links["advisor_url"])
    tokens |= {"citizen": citizen, "advisor": staff}
    await visit("GET", f"/join/{citizen}", 200)
    await visit("GET", f"/join/{staff}!!", 403)
    headers = {"X-Join-Token": citizen, "X-File-Name": "a.pdf", "Content-Type": "application/octet-stream"}
    uploaded = await visit("POST", f"/api/rooms/{room.room_id}/documents", 201, data=PDF, headers=headers)
    document = (await uploaded.json())["id"]
    where = f"/api/rooms/{room.room_id}/documents/{document}/download"
    url = await visit("POST", where, 200, headers={"X-Join-Token": citizen})
    download = (await url.json())["url"]
    tokens["download"] = download.rsplit("/", 1)[1]
    await visit("GET", download, 200)

    redis_server.stop(signal.SIGKILL)  # the same links while the store is unreachable
    outage = [
        f"/join/{citizen}",
        f"/join/{staff}",
        f"/wait/{wait}",
        f"/api/bookings/{manage}",
        f"/api/bookings/{manage}/ics",
        f"/api/bookings/join/{join}",
        f"/termin/verwalten/{form_manage}",
        f"/termin/verwalten/{form_manage}/termin.ics",
        f"/termin/beitreten/{form_join}",
        download,
    ]
    for path in outage:
        await visit("GET", path, 503)
    await visit("POST", f"/api/bookings/{manage}/cancel", 503)

    text = log_buffer.getvalue()
    lines = text.splitlines()
    assert len(lines) > 40, text
    if lines[0].startswith("{"):
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        paths = [e.get("path") for e in entries]
        assert "/termin/verwalten/…" in paths and "/api/bookings/…/ics" in paths and "/wait/…" in paths
    # the outage was logged, with the masked path
    assert "store unavailable on GET /join/…: ConnectionError" in text
    assert "store unavailable on POST /api/bookings/…/cancel: ConnectionError" in text
    for name, token in tokens.items():
        for part in _parts(token):
            assert part not in text, f"the {name} token ({part[:12]}…) appears in the log"


def test_mask_tokens_covers_every_capability_path_and_token_shape():
    """Issue 15, finding 1: every capability route, query values and token-shaped text anywhere."""
    token = "eyJiIjoiYWJjIiwiZXhwIjoxN30.Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXhxdQ"
    cases = {
        f"/join/{token}": "/join/…",
        f"/wait/{token}": "/wait/…",
        f"/api/download/{token}": "/api/download/…",
        f"/api/bookings/{token}": "/api/bookings/…",
        f"/api/bookings/{token}/cancel": "/api/bookings/…/cancel",
        f"/api/bookings/join/{token}": "/api/bookings/join/…",
        f"/termin/verwalten/{token}/termin.ics": "/termin/verwalten/…/termin.ics",
        f"/termin/beitreten/{token}": "/termin/beitreten/…",
        f"/join/{token}!!": "/join/…",
        "/join/anything-not-token-shaped": "/join/…",
        "/api/bookings": "/api/bookings",
        "/api/rooms/r1/documents": "/api/rooms/r1/documents",
        "/termin/vhs/weiterbildung/video": "/termin/vhs/weiterbildung/video",
    }
    for path, masked in cases.items():
        assert loggable_path(path) == masked, path
        assert mask_tokens(f"GET {path} 200") == f"GET {masked} 200", path
    assert mask_tokens(f"see https://x.example/termin/verwalten/{token}?neu=1 now") == (
        "see https://x.example/termin/verwalten/…?neu=1 now"
    )
    assert mask_tokens(f"/ws?node=n1&token={token}") == "/ws?node=n1&token=…"
    assert mask_tokens(f"claims {token}= in a message") == "claims … in a message"
    assert mask_tokens(f"on GET /wait/{token}: ConnectionError") == "on GET /wait/…: ConnectionError"
    assert mask_tokens(f"bad token {token}: expired") == "bad token …: expired"
    assert mask_tokens("room r-42 full, 3 of 3, took 1.5 s") == "room r-42 full, 3 of 3, took 1.5 s"


@pytest.mark.parametrize("log_buffer", ["text", "json"], indirect=True)
def test_the_filter_masks_messages_arguments_extras_and_tracebacks(log_buffer):
    """Issue 15, finding 1: a token that a future log call passes — as argument, extra or in an exception —
    is masked by the handler's filter, whatever the call site does."""
    token = "eyJiIjoiYWJjIiwiZXhwIjoxN30.Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXhxdQ"
    log = logging.getLogger("tests.hardening")
    log.warning("opened /termin/verwalten/%s for %s", token, "x", extra={"path": f"/join/{token}"})
    try:
        raise ValueError(f"bad token {token}")
    except ValueError:
        log.exception("failed on %s", {"url": f"/wait/{token}"})
    text = log_buffer.getvalue()
    assert "/termin/verwalten/…" in text and "ValueError: bad token …" in text
    for part in _parts(token):
        assert part not in text


# --- finding 15: a WebSocket during a store outage -----------------------------------------------


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> list[aiohttp.WSMessage]:
    """Every message until the server closes the socket."""
    seen = []
    while True:
        message = await ws.receive(timeout=10)
        seen.append(message)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return seen


async def test_console_socket_in_a_redis_outage_is_closed_with_try_again_later(
    aiohttp_client, tmp_path, redis_server
):
    """Issue 15, finding 15: the console socket needs the store (session, presence); while Redis is down
    it gets a `store_unavailable` error and close 1013 with a reason — not an HTTP 503 in the socket."""
    client = await aiohttp_client(create_app(redis_config(tmp_path, redis_server)))
    services = client.app[SERVICES]
    member = await services.staff.add("berater", PASSWORD, "advisor", ["vhs"], ["de"])
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: await services.staff.open_session(member)})
    origin = str(client.make_url("/")).rstrip("/")
    redis_server.stop(signal.SIGKILL)

    ws = await client.ws_connect("/ws/console", headers={"Origin": origin})
    seen = await _closed(ws)
    assert seen[-1].type == aiohttp.WSMsgType.CLOSE, seen
    assert ws.close_code == 1013 and seen[-1].extra == "store_unavailable"
    errors = [json.loads(m.data) for m in seen if m.type == aiohttp.WSMsgType.TEXT]
    assert (
        errors == [{"type": "error", "code": "store_unavailable", "message": errors[0]["message"]}]
        and errors[0]["message"]
    )


async def test_signaling_socket_for_another_node_in_a_redis_outage_is_closed_with_try_again_later(
    aiohttp_client, tmp_path, redis_server
):
    """Issue 15, finding 15: `/ws?node=` looks the node up in the store before the upgrade; in an outage
    the browser's socket is accepted and closed with 1013 (it reconnects), not refused with a bare 503."""
    client = await aiohttp_client(create_app(redis_config(tmp_path, redis_server)))
    redis_server.stop(signal.SIGKILL)
    ws = await client.ws_connect("/ws?node=somewhere-else")
    seen = await _closed(ws)
    assert seen[-1].type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1013, seen
    assert seen[-1].extra == "store_unavailable"
    # an HTTP request in the same outage still gets its 503 JSON
    queued = await client.post("/api/queue", json={"office": "vhs", "language": "de", "topic": "Kurs"})
    assert queued.status == 503 and (await queued.json())["error"]["code"] == "store_unavailable"


async def test_waiting_socket_in_a_redis_outage_answers_an_error_and_stays_open(
    aiohttp_client, tmp_path, redis_server
):
    """Issue 15, finding 15 (guard): the waiting socket opens without the store; its `wait` gets a
    `store_unavailable` error and the socket stays usable for the retry."""
    client = await aiohttp_client(create_app(redis_config(tmp_path, redis_server)))
    redis_server.stop(signal.SIGKILL)
    ws = await client.ws_connect("/ws/queue")
    await ws.send_json({"type": "wait", "id": 1, "token": "eyJlIjoieCJ9.c2ln"})
    error = await ws.receive_json(timeout=10)
    assert error["type"] == "error" and error["code"] in ("store_unavailable", "invalid_token")
    await ws.send_json({"type": "ping", "id": 2})
    assert (await ws.receive_json(timeout=10))["type"] == "pong"
    await ws.close()


# --- finding 16: headers on redirects and errors, Allow on 405 ------------------------------------


def _assert_security_headers(response: aiohttp.ClientResponse, where: str) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (where, response.status, name)


async def test_redirects_and_errors_carry_the_security_headers_and_405_carries_allow(client):
    """Issue 15, finding 16: 303 redirects (console without a session, the sign-in form, the booking form,
    a page that skips a step), 404s and 405s carry every security header; a 405 names the allowed
    methods in `Allow`, under /api/ (JSON) and on pages."""
    services = client.app[SERVICES]
    services.waiting.clock.set(at("12:00", TUESDAY - timedelta(days=1)))
    await advisor(services)

    console = await client.get("/console", allow_redirects=False)
    assert console.status == 303 and console.headers["Location"] == "/login"
    _assert_security_headers(console, "/console")
    assert console.headers["Cache-Control"] == "no-store"

    login_page = await (await client.get("/login")).text()
    hidden = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', login_page))
    origin = str(client.make_url("/")).rstrip("/")
    signed_in = await client.post(
        "/login",
        data=hidden | {"username": "anna", "password": PASSWORD},
        headers={"Origin": origin},
        allow_redirects=False,
    )
    assert signed_in.status == 303 and signed_in.headers["Location"] == "/console", await signed_in.text()
    _assert_security_headers(signed_in, "POST /login")

    form = await form_page(client)
    booked = await client.post(
        "/termin/vhs/weiterbildung/video", data=booking_form(form), allow_redirects=False
    )
    assert booked.status == 303 and booked.headers["Location"].startswith("/termin/verwalten/")
    _assert_security_headers(booked, "POST booking form")
    skipped = await client.get("/termin/vhs/sprachkurs", allow_redirects=False)
    assert skipped.status == 303
    _assert_security_headers(skipped, "/termin/vhs/sprachkurs")

    missing = await client.get("/api/nothing-here")
    assert missing.status == 404
    _assert_security_headers(missing, "/api/nothing-here")

    for method, path, allowed, api in [
        ("DELETE", "/api/login", {"POST"}, True),
        ("PUT", "/api/bookings", {"POST"}, True),
        ("POST", "/healthz", {"GET", "HEAD"}, False),
        ("PUT", "/console", {"GET", "HEAD"}, False),
        ("DELETE", "/login", {"GET", "HEAD", "POST"}, False),
    ]:
        response = await client.request(method, path, allow_redirects=False)
        assert response.status == 405, (method, path)
        assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed, (method, path)
        _assert_security_headers(response, f"{method} {path}")
        if api:
            assert (await response.json())["error"]["code"] == "method_not_allowed"
        else:
            assert "text/html" in response.headers["Content-Type"]


async def test_a_streamed_download_carries_the_security_headers(client, services, room_links):
    """Issue 15, finding 16: the download is a prepared stream (its headers go out before any middleware
    could add one); it still carries Referrer-Policy and the rest, beside its own sandbox CSP."""
    token = token_of(room_links["citizen_url"])
    room_id = (await services.rooms.admit(token))[1].room_id
    headers = {"X-Join-Token": token, "X-File-Name": "a.pdf", "Content-Type": "application/octet-stream"}
    uploaded = await client.post(f"/api/rooms/{room_id}/documents", data=PDF, headers=headers)
    assert uploaded.status == 201, await uploaded.text()
    document = (await uploaded.json())["id"]
    url = await client.post(
        f"/api/rooms/{room_id}/documents/{document}/download", headers={"X-Join-Token": token}
    )
    response = await client.get((await url.json())["url"])
    assert response.status == 200 and await response.read() == PDF
    assert response.headers["Content-Security-Policy"] == "sandbox"
    for name, value in HEADERS.items():
        if name != "Content-Security-Policy":
            assert response.headers.get(name) == value, name
