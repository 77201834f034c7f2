"""HTTP surface: health, join links, staff sign-in, room creation, headers."""

from __future__ import annotations

import pytest

from sprechstunde.web.core.security import HEADERS


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_join_page_shows_prejoin_in_german_and_english(client, room_links):
    path = room_links["citizen_url"].replace("http://test", "")
    de = await client.get(path, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert de.status == 200
    assert "Beitreten" in await de.text()
    en = await client.get(path, headers={"Accept-Language": "en-GB,en;q=0.8,de;q=0.2"})
    assert "Join" in await en.text()
    for name, value in HEADERS.items():
        assert de.headers[name] == value
    assert "'unsafe-inline'" not in de.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("make_path", "status", "german", "english"),
    [
        (
            lambda s, links: links["citizen_url"].replace("http://test", "")[:-3] + "abc",
            403,
            "ungültig",
            "not valid",
        ),
        (
            lambda s, links: "/join/" + s.signer.join_token("nope", "citizen", 4_000_000_000),
            404,
            "gibt es nicht",
            "does not exist",
        ),
        (lambda s, links: "/join/" + s.signer.join_token("nope", "citizen", 1), 410, "abgelaufen", "expired"),
        (lambda s, links: "/join/%%%", 403, "ungültig", "not valid"),
    ],
)
async def test_bad_links_show_a_clear_page(client, services, room_links, make_path, status, german, english):
    path = make_path(services, room_links)
    de = await client.get(path, headers={"Accept-Language": "de"})
    assert de.status == status
    body = await de.text()
    assert german in body and "Traceback" not in body
    en = await client.get(path, headers={"Accept-Language": "en"})
    assert en.status == status and english in await en.text()


async def test_room_past_its_end_is_gone(client, services):
    room = await services.rooms.create("vhs", 3600)
    links = services.rooms.links(room, "")
    services.rooms._clock = lambda: room.expires_at + 1
    response = await client.get(links.citizen_url)
    assert response.status == 410


async def test_unknown_page_is_404_page(client):
    response = await client.get("/nothing-here")
    assert response.status == 404
    assert "Diese Seite gibt es nicht" in await response.text()


async def add_staff(services, name="berater", offices=("vhs",), password="richtig-langes-passwort"):
    await services.staff.add(name, password, "advisor", list(offices))
    return password


async def test_create_room_over_api_as_staff(client, services):
    password = await add_staff(services)
    unauth = await client.post("/api/rooms", json={"office": "vhs"})
    assert unauth.status == 401
    assert (await unauth.json())["error"]["code"] == "not_authenticated"
    login = await client.post("/api/login", json={"username": "berater", "password": password})
    assert login.status == 200
    cookie = login.cookies["sprechstunde_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    csrf = {"X-CSRF-Token": (await login.json())["csrf"]}  # issue 15, finding 12: the cookie is not enough
    created = await client.post("/api/rooms", json={"office": "vhs", "ttl": "90m"}, headers=csrf)
    assert created.status == 201
    data = await created.json()
    assert set(data) == {"room_id", "advisor_url", "citizen_url", "expires_at"}
    page = await client.get(data["citizen_url"].split("127.0.0.1:8080", 1)[1])
    assert page.status == 200
    other = await client.post("/api/rooms", json={"office": "standesamt"}, headers=csrf)
    assert other.status == 403
    assert (await other.json())["error"]["code"] == "forbidden_office"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{", "application/json", 400, "bad_json"),
        ("[]", "application/json", 400, "bad_json"),
        ('{"office": "vhs"}', "text/plain", 415, "unsupported_media_type"),
        ('{"office": "vhs", "ttl": "forever"}', "application/json", 400, "invalid_ttl"),
        ('{"office": 7}', "application/json", 400, "invalid_office"),
        ('{"office": "vhs", "pad": "' + "x" * 20000 + '"}', "application/json", 413, "too_large"),
    ],
)
async def test_bad_api_input_gets_json_error(client, services, body, content_type, status, code):
    password = await add_staff(services)
    login = await client.post("/api/login", json={"username": "berater", "password": password})
    csrf = (await login.json())["csrf"]
    headers = {"Content-Type": content_type, "X-CSRF-Token": csrf}
    response = await client.post("/api/rooms", data=body, headers=headers)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_wrong_password_and_rate_limit(client, services):
    await add_staff(services)
    for _ in range(5):
        response = await client.post("/api/login", json={"username": "berater", "password": "falsch"})
        assert response.status == 401
    limited = await client.post("/api/login", json={"username": "berater", "password": "falsch"})
    assert limited.status == 429
    assert (await limited.json())["error"]["code"] == "rate_limited"


async def test_console_creates_room_with_csrf(client, services):
    password = await add_staff(services)
    login = await client.post(
        "/login", data={"username": "berater", "password": password}, allow_redirects=False
    )
    assert login.status == 303 and login.headers["Location"] == "/console"
    console = await client.get("/console")
    html = await console.text()
    assert "Neuen Beratungsraum anlegen" in html
    csrf = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    forged = await client.post("/console/rooms", data={"office": "vhs", "csrf": "nope"})
    assert forged.status == 403
    created = await client.post("/console/rooms", data={"office": "vhs", "csrf": csrf})
    assert created.status == 200
    assert "/join/" in await created.text()


async def test_staff_passwords_are_stored_hashed(services):
    password = await add_staff(services)
    record = await services.store.get("staff", "berater")
    assert password not in str(record)
    assert record["password"].startswith("scrypt$")
