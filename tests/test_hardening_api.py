"""Issue 15 (hardening), the HTTP API's input handling: findings 2, 10, 12 and 14.

Finding 2: a JSON body that arrives in two TCP segments (or in chunks) is read whole.
Finding 10: deeply nested JSON, oversized multipart headers, a CSRF field sent as a file part and extreme
dates get a 4xx with the JSON error, never a 500.
Finding 12: POST /api/rooms needs the CSRF header and an office that exists.
Finding 14: a multipart upload without its closing boundary is refused and leaves nothing behind.

The raw-socket tests talk to the app on a real port (aiohttp's test server), so that what arrives and
when is exactly what the test wrote.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from sprechstunde.rooms.service import ROOM_KIND
from sprechstunde.web.core.services import SERVICES, SESSION_COOKIE
from tests.conftest import token_of
from tests.test_booking_api import TUESDAY, at
from tests.test_booking_api import advisor as add_advisor
from tests.test_booking_api import request as booking_request
from tests.test_waiting_api import OPEN

PASSWORD = "richtig-langes-passwort"


# --- a raw HTTP/1.1 client ------------------------------------------------------------------------


async def raw_exchange(client, pieces: list[bytes], pause: float = 0.1) -> tuple[int, dict[str, str], bytes]:
    """Write `pieces` to a fresh connection with `pause` seconds between them; the parsed answer."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        for index, piece in enumerate(pieces):
            if index:
                await asyncio.sleep(pause)
            writer.write(piece)
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        whole, rest = b"", body
        while True:
            size, _, rest = rest.partition(b"\r\n")
            if int(size, 16) == 0:
                break
            whole, rest = whole + rest[: int(size, 16)], rest[int(size, 16) + 2 :]
        body = whole
    return int(lines[0].split()[1]), headers, body


def request_head(client, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {client.host}:{client.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def split_json_post(client, path: str, data: Any, *, chunked: bool) -> tuple[int, Any]:
    """POST `data` as JSON with the body split in two writes ~100 ms apart (Content-Length or chunked)."""
    body = json.dumps(data).encode()
    half = len(body) // 2
    headers = {"Content-Type": "application/json", "Accept-Language": "de"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        first = f"{len(body):x}\r\n".encode() + body[:half]
        second = body[half:] + b"\r\n0\r\n\r\n"
    else:
        headers["Content-Length"] = str(len(body))
        first, second = body[:half], body[half:]
    status, _, answer = await raw_exchange(
        client, [request_head(client, "POST", path, headers) + first, second]
    )
    return status, json.loads(answer)


# --- finding 2: bodies split across TCP segments -----------------------------------------------------


async def _login_case(services) -> tuple[str, dict, int]:
    await services.staff.add("berater", PASSWORD, "advisor", ["vhs"], ["de"])
    return "/api/login", {"username": "berater", "password": PASSWORD}, 200


async def _queue_case(services) -> tuple[str, dict, int]:
    services.waiting.clock.set(OPEN)
    return "/api/queue", {"office": "vhs", "language": "de", "topic": "Sprachkurs", "note": "x" * 300}, 201


async def _booking_case(services) -> tuple[str, dict, int]:
    services.waiting.clock.set(at("12:00", TUESDAY - timedelta(days=1)))
    await add_advisor(services)
    return "/api/bookings", booking_request(name="Erika " + "M" * 60), 201


async def _chatbot_case(services) -> tuple[str, dict, int]:
    return "/api/chatbot/messages", {"text": "Wie beantrage ich einen neuen Personalausweis? " * 4}, 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("case", [_login_case, _queue_case, _booking_case, _chatbot_case])
async def test_json_body_in_two_segments_is_read_whole(client, case, chunked):
    """Issue 15, finding 2: only what had arrived was read, so a body in two segments was `bad_json`."""
    path, data, expected = await case(client.app[SERVICES])
    status, answer = await split_json_post(client, path, data, chunked=chunked)
    assert status == expected, answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_split_body_over_the_limit_is_413(client, chunked):
    """Issue 15, finding 2: the whole body is read, but never more than the limit (+1 byte)."""
    data = {"office": "vhs", "language": "de", "topic": "x" * 20_000}
    status, answer = await split_json_post(client, "/api/queue", data, chunked=chunked)
    assert status == 413 and answer["error"]["code"] == "too_large"


# --- finding 10: 500s on odd input -----------------------------------------------------------------


@pytest.mark.parametrize("depth", [2_000, 2_700])  # within the 16 KiB limit, past the stack
async def test_deeply_nested_json_is_bad_json(client, depth):
    """Issue 15, finding 10: RecursionError in json.loads was a 500."""
    for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        response = await client.post("/api/queue", data=body, headers={"Content-Type": "application/json"})
        assert response.status == 400, await response.text()
        assert (await response.json())["error"]["code"] == "bad_json"


def multipart(boundary: str, parts: list[tuple[str, str | None, bytes]], *, close: bool = True) -> bytes:
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


async def raw_upload(client, links: dict, body: bytes, boundary: str = "XyZ", **extra: str):
    headers = {
        "X-Join-Token": token_of(links["citizen_url"]),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(body)),
        **extra,
    }
    path = f"/api/rooms/{links['room_id']}/documents"
    status, _, answer = await raw_exchange(client, [request_head(client, "POST", path, headers) + body])
    return status, json.loads(answer)


async def nothing_stored(services, room_id: str) -> None:
    docs = services.documents
    assert await docs.list(room_id) == [] and await docs.used_bytes(room_id) == 0
    assert docs._inflight.get(room_id, 0) == 0  # the quota reservation was given back
    assert [p for p in docs.root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    "header",
    ["X-Big: " + "a" * 20_000, "Content-Disposition: form-data; name=file; filename=" + "a" * 20_000],
    ids=["long-header", "long-disposition"],
)
async def test_oversized_multipart_part_header_is_400(client, services, room_links, header):
    """Issue 15, finding 10: aiohttp's LineTooLong from a part header was a 500 with a traceback."""
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        + header.encode()
        + b"\r\n\r\nHallo\r\n--XyZ--\r\n"
    )
    status, answer = await raw_upload(client, room_links, body)
    assert status == 400 and answer["error"]["code"] == "bad_multipart", answer
    await nothing_stored(services, room_links["room_id"])


async def test_too_many_multipart_part_headers_is_400(client, services, room_links):
    """Issue 15, finding 10: so is BadHttpMessage for too many headers in a part."""
    headers = "".join(f"X-H{i}: {i}\r\n" for i in range(200))
    body = (
        f'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n{headers}\r\n'
        "Hallo\r\n--XyZ--\r\n"
    ).encode()
    status, answer = await raw_upload(client, room_links, body)
    assert status == 400 and answer["error"]["code"] == "bad_multipart", answer
    await nothing_stored(services, room_links["room_id"])


async def signed_in(client, services, role: str = "advisor", offices=("vhs",)) -> str:
    await services.staff.add("berater", PASSWORD, role, list(offices), ["de"])
    login = await client.post("/api/login", json={"username": "berater", "password": PASSWORD})
    assert login.status == 200
    return (await login.json())["csrf"]


@pytest.mark.parametrize("path", ["/console/rooms", "/logout", "/console/tickets/SP-2026-000001"])
async def test_csrf_field_as_a_file_part_is_refused_not_a_500(client, services, path):
    """Issue 15, finding 10: a FileField where the CSRF string belongs made hmac raise TypeError (500)."""
    csrf = await signed_in(client, services)
    form = aiohttp.FormData()
    form.add_field("csrf", csrf.encode(), filename="csrf.txt", content_type="text/plain")
    form.add_field("office", "vhs")
    form.add_field("status", "done")
    session = next(c.value for c in client.session.cookie_jar if c.key == SESSION_COOKIE)
    response = await client.post(path, data=form, allow_redirects=False)
    assert response.status in (303, 403), (path, response.status)
    assert await services.store.scan(ROOM_KIND) == []
    # /logout drops the cookie whatever came; without a valid token the session itself stays open
    assert await services.staff.session_member(session) is not None


async def test_csrf_as_a_file_part_of_a_document_upload(client, services, room_links):
    """Issue 15, finding 10: staff uploads take the CSRF token from the header only."""
    csrf = await signed_in(client, services)
    form = aiohttp.FormData()
    form.add_field("csrf", csrf.encode(), filename="csrf.txt", content_type="text/plain")
    form.add_field("file", b"Hallo, Text.\n", filename="notiz.txt", content_type="text/plain")
    response = await client.post(f"/api/rooms/{room_links['room_id']}/documents", data=form)
    assert response.status == 403 and (await response.json())["error"]["code"] == "csrf"
    await nothing_stored(services, room_links["room_id"])


@pytest.mark.parametrize(
    "token", ["ü".encode() * 43, b"\xff\xfe", b"a" * 5000], ids=["umlaut", "latin1", "long"]
)
async def test_odd_csrf_header_values_are_403(client, services, token):
    """Issue 15, finding 10: a non-ASCII CSRF value made hmac.compare_digest raise TypeError."""
    await signed_in(client, services)
    cookie = "; ".join(f"{c.key}={c.value}" for c in client.session.cookie_jar)
    head = request_head(
        client, "POST", "/api/staff/appointments/x/no-show", {"X-CSRF-Token": "TOKEN", "Cookie": cookie}
    )
    status, _, answer = await raw_exchange(client, [head.replace(b"TOKEN", token)])
    assert status == 403 and json.loads(answer)["error"]["code"] == "csrf"


BOOKING = "/api/booking/offices/vhs/services/weiterbildung"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("/days?month=9999-12", "invalid_month"),
        ("/days?month=0001-01", "invalid_month"),
        ("/days?month=10000-01", "invalid_month"),
        ("/slots?date=0001-01-01", "invalid_date"),
        ("/slots?date=9999-12-31", "invalid_date"),
    ],
)
async def test_extreme_dates_in_queries_are_400(client, services, query, code):
    """Issue 15, finding 10: `date += 1 day` past 9999-12-31 raised OverflowError (500)."""
    services.waiting.clock.set(at("12:00", TUESDAY - timedelta(days=1)))
    await add_advisor(services)
    response = await client.get(BOOKING + query)
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == code


async def test_dates_within_range_still_answer(client, services):
    """Issue 15, finding 10: the bounds leave every sensible month alone."""
    services.waiting.clock.set(at("12:00", TUESDAY - timedelta(days=1)))
    await add_advisor(services)
    for query in ("/days?month=1970-01", "/days?month=2999-12", f"/slots?date={TUESDAY}"):
        response = await client.get(BOOKING + query)
        assert response.status == 200, (query, await response.text())
    month = await (await client.get(BOOKING + "/days?month=2100-02")).json()
    assert month["month"] == "2100-02" and len(month["days"]) == 28


@pytest.mark.parametrize("starts_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_extreme_instants_in_bookings_are_400(client, services, starts_at):
    """Issue 15, finding 10: astimezone() of an instant beyond year 1…9999 raised OverflowError."""
    services.waiting.clock.set(at("12:00", TUESDAY - timedelta(days=1)))
    await add_advisor(services)
    response = await client.post("/api/bookings", json=booking_request(starts_at=starts_at))
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == "invalid_time"
    booked = await client.post("/api/bookings", json=booking_request())
    assert booked.status == 201
    manage = (await booked.json())["manage_token"]
    moved = await client.post(f"/api/bookings/{manage}/reschedule", json={"starts_at": starts_at})
    assert moved.status == 400 and (await moved.json())["error"]["code"] == "invalid_time"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=9999-12-31", "invalid_from"),
        ("from=9999-12-01&days=62", "invalid_from"),
        ("from=0001-01-01", "invalid_from"),
    ],
)
async def test_extreme_dates_on_staff_routes_are_400(client, services, query, code):
    """Issue 15, finding 10: the advisor's appointment list overflowed past year 9999."""
    await signed_in(client, services)
    response = await client.get("/api/staff/appointments?" + query)
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == code
    slots = await client.get("/api/staff/appointments/nothing/slots?date=9999-12-31")
    assert slots.status == 400 and (await slots.json())["error"]["code"] == "invalid_date"


# --- finding 12: POST /api/rooms -------------------------------------------------------------------


async def test_create_room_needs_the_csrf_header(client, services):
    """Issue 15, finding 12: a cookie-only request (what a cross-site form could send) made a room."""
    csrf = await signed_in(client, services)
    for headers in ({}, {"X-CSRF-Token": "falsch"}, {"X-CSRF-Token": csrf[:-1]}):
        response = await client.post("/api/rooms", json={"office": "vhs"}, headers=headers)
        assert response.status == 403 and (await response.json())["error"]["code"] == "csrf"
    assert await services.store.scan(ROOM_KIND) == []
    made = await client.post("/api/rooms", json={"office": "vhs"}, headers={"X-CSRF-Token": csrf})
    assert made.status == 201, await made.text()


async def test_create_room_for_an_unknown_office_is_404(client, services):
    """Issue 15, finding 12: an admin could create rooms for offices that do not exist."""
    csrf = await signed_in(client, services, role="admin")
    for office in ("nirgendwo", "", "VHS"):
        response = await client.post("/api/rooms", json={"office": office}, headers={"X-CSRF-Token": csrf})
        assert response.status == 404, await response.text()
        assert (await response.json())["error"]["code"] == "unknown_office"
    assert await services.store.scan(ROOM_KIND) == []


# --- finding 14: multipart without its closing boundary ---------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [b"", b"\r\n", b"\r\n--XyZ", b"\r\n--XyZ\r\n", b"\r\n--XyZ-"],
    ids=["cut-in-content", "cut-after-crlf", "delimiter-only", "delimiter-then-eof", "half-close"],
)
async def test_multipart_without_closing_boundary_stores_nothing(client, services, room_links, tail):
    """Issue 15, finding 14: a body cut before `--boundary--` was stored as a complete, truncated file."""
    content = b"Hallo Welt, das ist ein Text.\n" * 100
    body = multipart("XyZ", [("file", "brief.txt", content)], close=False)[: -len(b"\r\n")] + tail
    status, answer = await raw_upload(client, room_links, body)
    assert status == 400 and answer["error"]["code"] == "incomplete_upload", answer
    await nothing_stored(services, room_links["room_id"])
    whole = multipart("XyZ", [("file", "brief.txt", content)])
    status, answer = await raw_upload(client, room_links, whole)
    assert status == 201 and answer["size"] == len(content), answer


async def test_multipart_cut_in_a_later_part_stores_nothing(client, services, room_links):
    """Issue 15, finding 14: the form after the file must end properly too."""
    parts = [("file", "brief.txt", b"Hallo Welt.\n" * 50), ("comment", None, b"noch etwas")]
    body = multipart("XyZ", parts, close=False)[:-6]
    status, answer = await raw_upload(client, room_links, body)
    assert status == 400 and answer["error"]["code"] in ("incomplete_upload", "bad_multipart"), answer
    await nothing_stored(services, room_links["room_id"])


async def test_raw_upload_shorter_than_its_content_length_stores_nothing(client, services, room_links):
    """Issue 15, finding 14 (raw-body variant): the client stops sending and half-closes."""
    content = b"Hallo Welt, das ist ein Text.\n" * 100
    headers = {
        "X-Join-Token": token_of(room_links["citizen_url"]),
        "Content-Type": "application/octet-stream",
        "X-File-Name": "brief.txt",
        "Content-Length": str(len(content) + 500),
    }
    path = f"/api/rooms/{room_links['room_id']}/documents"
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request_head(client, "POST", path, headers) + content)
    await writer.drain()
    writer.write_eof()
    await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await asyncio.sleep(0.2)
    await nothing_stored(services, room_links["room_id"])


async def test_sign_in_form_with_a_malformed_multipart_body_is_a_400_not_a_500(client):
    """The login form is read like every form (web/core/api.read_form): a multipart body whose part
    headers never end is refused with 400, never an error from deep inside aiohttp's parser."""
    body = b'--XyZ\r\nContent-Disposition: form-data; name="username"' + b"x" * 70000
    response = await client.post(
        "/login",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=XyZ", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status == 400
