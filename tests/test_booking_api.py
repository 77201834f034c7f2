"""The booking JSON API through the real app: offices, days, slots, book, manage by token, .ics, the join
link into the waiting room, advisor routes with session + CSRF, and /api/openapi.json."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta

import icalendar
import pytest

from sprechstunde.rooms import hours
from sprechstunde.rooms.offices import load_offices
from sprechstunde.scheduling.availability import parse_availability
from sprechstunde.scheduling.records import BOOKING_KIND, MANAGE_PURPOSE
from sprechstunde.web.core.services import SERVICES, RequestThrottle
from tests.scheduling_support import BERLIN, FULL, PASSWORD


def _open_tuesday() -> date:
    """A Tuesday at least a week ahead on which the VHS is open (tokens expire by the real clock)."""
    vhs = load_offices().require("vhs")
    day = datetime.now(BERLIN).date() + timedelta(days=7)
    while True:
        day += timedelta(days=(1 - day.weekday()) % 7)
        if hours.opening_intervals(vhs, day):
            return day
        day += timedelta(days=1)


TUESDAY = _open_tuesday()


def at(hhmm: str, day: date = TUESDAY) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), BERLIN)


@pytest.fixture
def services(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(at("12:00", TUESDAY - timedelta(days=1)))
    return services


async def advisor(services, name="anna", languages=("de",), offices=("vhs",)):
    member = await services.staff.add(name, PASSWORD, "advisor", list(offices), list(languages))
    await services.scheduling.availability.set(parse_availability(name, {"weekly": FULL}))
    return member


def request(**change) -> dict:
    return {
        "office": "vhs",
        "service": "weiterbildung",
        "channel": "video",
        "starts_at": at("08:00").isoformat(),
        "name": "Erika Mustermann",
        "email": "erika@example.org",
        "consent": True,
    } | change


async def sign_in(client, name="anna") -> str:
    response = await client.post("/api/login", json={"username": name, "password": PASSWORD})
    assert response.status == 200
    return (await response.json())["csrf"]


async def test_offices_days_and_slots(client, services):
    await advisor(services)
    offices = (await (await client.get("/api/booking/offices")).json())["offices"]
    vhs = next(o for o in offices if o["id"] == "vhs")
    assert vhs["names"]["de"] == "Volkshochschule" and vhs["address"]
    assert {
        "id": "weiterbildung",
        "minutes": 30,
        "buffer_minutes": 10,
        "channels": ["video", "in_person"],
    }.items() <= {k: v for s in vhs["services"] if s["id"] == "weiterbildung" for k, v in s.items()}.items()
    month = TUESDAY.strftime("%Y-%m")
    days = await client.get(
        f"/api/booking/offices/vhs/services/weiterbildung/days?month={month}&channel=video"
    )
    assert days.status == 200
    by_date = {d["date"]: d for d in (await days.json())["days"]}
    assert by_date[TUESDAY.isoformat()]["free_slots"] == 13
    slots = await client.get(f"/api/booking/offices/vhs/services/weiterbildung/slots?date={TUESDAY}")
    body = await slots.json()
    assert body["slots"][0] == {
        "starts_at": at("08:00").isoformat(),
        "ends_at": at("08:30").isoformat(),
        "free": 1,
    }
    for url, status, code in [
        ("/api/booking/offices/nowhere/services/x/slots?date=2027-01-12", 404, "unknown_office"),
        ("/api/booking/offices/vhs/services/x/slots?date=2027-01-12", 404, "unknown_service"),
        ("/api/booking/offices/vhs/services/weiterbildung/slots?date=12.01.2027", 400, "invalid_date"),
        ("/api/booking/offices/vhs/services/weiterbildung/days?month=2027-13", 400, "invalid_month"),
        (
            "/api/booking/offices/vhs/services/sprachkurs/slots?date=2027-01-12&channel=in_person",
            400,
            "invalid_channel",
        ),
    ]:
        response = await client.get(url)
        assert response.status == status, url
        assert (await response.json())["error"]["code"] == code


async def test_book_manage_ics_and_cancel(client, services):
    await advisor(services)
    response = await client.post("/api/bookings", json=request(), headers={"Accept-Language": "de"})
    assert response.status == 201, await response.text()
    booked = await response.json()
    assert booked["reference"].startswith(f"T-{TUESDAY.year}-") and booked["status"] == "booked"
    assert (
        booked["starts_at"] == at("08:00").isoformat()
        and booked["service"]["name"] == "Beratung Weiterbildung"
    )
    base = services.config.public_url
    assert booked["join_url"].startswith(base + "/termin/beitreten/")
    assert booked["manage_url"] == f"{base}/termin/verwalten/{booked['manage_token']}"
    assert booked["mail"] == {"configured": False}
    assert booked["join_opens_at"] == at("07:50").isoformat()

    got = await client.get(f"/api/bookings/{booked['manage_token']}")
    assert (await got.json())["reference"] == booked["reference"]

    ics = await client.get(f"/api/bookings/{booked['manage_token']}/ics")
    assert ics.status == 200 and ics.content_type == "text/calendar"
    calendar = icalendar.Calendar.from_ical(await ics.read())
    event = next(iter(calendar.walk("VEVENT")))
    assert event["UID"] == f"{booked['booking_id']}@127.0.0.1"
    assert event.decoded("DTSTART") == at("08:00") and event.decoded("DTEND") == at("08:30")
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert calendar.walk("VTIMEZONE")[0]["TZID"] == "Europe/Berlin"
    assert str(event["URL"]) == booked["join_url"] and booked["reference"] in str(event["DESCRIPTION"])
    assert "DTSTAMP" in event and str(event["SUMMARY"]).startswith("Beratung Weiterbildung")

    taken = await client.get(f"/api/booking/offices/vhs/services/weiterbildung/slots?date={TUESDAY}")
    assert (await taken.json())["slots"][0]["starts_at"] == at("08:40").isoformat()
    cancelled = await client.post(f"/api/bookings/{booked['manage_token']}/cancel")
    assert cancelled.status == 200 and (await cancelled.json())["status"] == "cancelled"
    again = await client.post(f"/api/bookings/{booked['manage_token']}/cancel")
    assert again.status == 409 and (await again.json())["error"]["code"] == "not_booked"
    free = await client.get(f"/api/booking/offices/vhs/services/weiterbildung/slots?date={TUESDAY}")
    assert (await free.json())["slots"][0]["starts_at"] == at("08:00").isoformat()


async def test_fifty_concurrent_http_bookings_of_the_last_seat(client, services):
    services.booking_throttle = RequestThrottle(per_network=1000)
    await advisor(services)
    responses = await asyncio.gather(
        *(client.post("/api/bookings", json=request(name=f"Person {i}")) for i in range(50))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 49
    lost = [await r.json() for r in responses if r.status == 409]
    assert all(e["error"]["code"] == "slot_taken" for e in lost)
    assert all(e["error"]["message"] == "Dieser Termin ist gerade vergeben" for e in lost)
    assert all(e["error"]["slots"][0]["starts_at"] == at("08:40").isoformat() for e in lost)
    assert len(await services.store.scan(BOOKING_KIND)) == 1


async def test_double_submit_of_the_same_form_books_once(client, services):
    await advisor(services)
    await advisor(services, "bert")
    headers = {"Idempotency-Key": "form-abcdef123"}
    first = await client.post("/api/bookings", json=request(), headers=headers)
    second = await client.post("/api/bookings", json=request(), headers=headers)
    assert (first.status, second.status) == (201, 200)
    assert (await first.json())["booking_id"] == (await second.json())["booking_id"]
    other = await client.post("/api/bookings", json=request(name="Jemand anders"), headers=headers)
    assert other.status == 422 and (await other.json())["error"]["code"] == "idempotency_mismatch"
    assert len(await services.store.scan(BOOKING_KIND)) == 1


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"starts_at": "2020-01-07T08:00:00+01:00"}, 400, "past_slot"),
        ({"starts_at": "TUESDAY 07:00"}, 400, "outside_hours"),
        ({"starts_at": "TUESDAY 08:15"}, 400, "outside_hours"),
        ({"starts_at": "morgen"}, 400, "invalid_time"),
        ({"office": "nowhere"}, 404, "unknown_office"),
        ({"service": "nothing"}, 404, "unknown_service"),
        ({"channel": None}, 400, "invalid_channel"),
        ({"email": "kein@mail"}, 400, "invalid_email"),
        ({"consent": "yes"}, 400, "consent_required"),
        ({"name": ""}, 400, "invalid_name"),
    ],
)
async def test_bad_booking_requests_are_clear_errors_and_create_nothing(
    client, services, change, status, code
):
    await advisor(services)
    if isinstance(change.get("starts_at"), str) and change["starts_at"].startswith("TUESDAY"):
        change["starts_at"] = at(change["starts_at"].split()[1]).isoformat()
    response = await client.post("/api/bookings", json=request(**change))
    assert response.status == status
    error = (await response.json())["error"]
    assert error["code"] == code and error["message"]
    assert await services.store.scan(BOOKING_KIND) == []


async def test_holiday_is_refused(client, services):
    await advisor(services)
    vhs = services.scheduling.offices.require("vhs")
    day = TUESDAY
    while day not in vhs.holidays or day.weekday() > 4:
        day += timedelta(days=1)
    services.waiting.clock.set(at("12:00", day - timedelta(days=3)))
    response = await client.post("/api/bookings", json=request(starts_at=at("10:00", day).isoformat()))
    assert response.status == 400 and (await response.json())["error"]["code"] in ("holiday", "closed_day")
    assert await services.store.scan(BOOKING_KIND) == []


async def test_forged_expired_and_join_tokens_change_nothing(client, services):
    await advisor(services)
    booked = await (await client.post("/api/bookings", json=request())).json()
    expired = services.signer.sign(MANAGE_PURPOSE, {"b": booked["booking_id"], "exp": 1})
    join_token = booked["join_url"].rsplit("/", 1)[1]
    for token, status, code in [
        (booked["manage_token"][:-4] + "AAAA", 403, "invalid_token"),
        (expired, 410, "expired"),
        (join_token, 403, "invalid_token"),
    ]:
        for method, path in [("GET", ""), ("POST", "/cancel")]:
            response = await client.request(method, f"/api/bookings/{token}{path}")
            assert response.status == status
            assert (await response.json())["error"]["code"] == code
        moved = await client.post(
            f"/api/bookings/{token}/reschedule", json={"starts_at": at("09:20").isoformat()}
        )
        assert moved.status == status
    assert (await services.scheduling.get(booked["booking_id"])).status == "booked"
    assert len(await services.store.scan(BOOKING_KIND)) == 1


async def test_citizen_reschedules_by_token(client, services):
    await advisor(services)
    booked = await (await client.post("/api/bookings", json=request())).json()
    moved = await client.post(
        f"/api/bookings/{booked['manage_token']}/reschedule", json={"starts_at": at("09:20").isoformat()}
    )
    assert moved.status == 201
    new = await moved.json()
    assert new["starts_at"] == at("09:20").isoformat() and new["booking_id"] == booked["booking_id"]
    assert (new["reference"], new["manage_url"], new["join_url"]) == (
        booked["reference"],
        booked["manage_url"],
        booked["join_url"],
    )
    now = await (await client.get(f"/api/bookings/{booked['manage_token']}")).json()
    assert now["status"] == "booked" and now["starts_at"] == at("09:20").isoformat()
    slots = await (
        await client.get(f"/api/booking/offices/vhs/services/weiterbildung/slots?date={TUESDAY}")
    ).json()
    assert [s["starts_at"] for s in slots["slots"]][:2] == [at("08:00").isoformat(), at("08:40").isoformat()]


async def test_advisor_routes_need_session_and_csrf(client, services):
    await advisor(services)
    booked = await (await client.post("/api/bookings", json=request())).json()
    anonymous = await client.get("/api/staff/appointments")
    assert anonymous.status == 401
    csrf = await sign_in(client)
    listing = await client.get(f"/api/staff/appointments?from={TUESDAY}&days=1")
    appointments = (await listing.json())["appointments"]
    assert [a["reference"] for a in appointments] == [booked["reference"]]
    assert appointments[0]["mine"] is True and appointments[0]["name"] == "Erika Mustermann"

    no_csrf = await client.post(f"/api/staff/appointments/{booked['booking_id']}/no-show")
    assert no_csrf.status == 403 and (await no_csrf.json())["error"]["code"] == "csrf"
    headers = {"X-CSRF-Token": csrf}
    early = await client.post(f"/api/staff/appointments/{booked['booking_id']}/no-show", headers=headers)
    assert early.status == 409 and (await early.json())["error"]["code"] == "not_started"

    free = await client.get(f"/api/staff/appointments/{booked['booking_id']}/slots?date={TUESDAY}")
    assert at("09:20").isoformat() in [s["starts_at"] for s in (await free.json())["slots"]]
    moved = await client.post(
        f"/api/staff/appointments/{booked['booking_id']}/reschedule",
        json={"starts_at": at("09:20").isoformat()},
        headers=headers,
    )
    assert moved.status == 201
    new_id = (await moved.json())["booking_id"]
    assert new_id == booked["booking_id"] and (await moved.json())["reference"] == booked["reference"]
    services.waiting.clock.set(at("09:25"))
    marked = await client.post(f"/api/staff/appointments/{new_id}/no-show", headers=headers)
    assert marked.status == 200 and (await marked.json())["status"] == "no_show"

    # availability: own pattern via PUT, bad input named
    bad = await client.put("/api/staff/availability", json={"weekly": {"mon": "9-17"}}, headers=headers)
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "weekly.mon"
    put = await client.put(
        "/api/staff/availability",
        json={"weekly": {"tue": ["08:00-12:00"]}, "absences": [{"from": "2030-01-01", "to": "2030-01-02"}]},
        headers=headers,
    )
    assert put.status == 200
    got = await (await client.get("/api/staff/availability")).json()
    assert got["weekly"] == {"tue": ["08:00-12:00"]} and got["absences"][0]["from"] == "2030-01-01"
    other = await client.get("/api/staff/availability?username=bert")
    assert other.status == 403


async def test_advisor_of_another_office_cannot_touch_the_booking(client, services):
    await advisor(services)
    booked = await (await client.post("/api/bookings", json=request())).json()
    await advisor(services, "sina", offices=("standesamt",))
    csrf = await sign_in(client, "sina")
    listing = await (await client.get(f"/api/staff/appointments?from={TUESDAY}")).json()
    assert listing["appointments"] == []
    response = await client.post(
        f"/api/staff/appointments/{booked['booking_id']}/no-show", headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 403 and (await response.json())["error"]["code"] == "forbidden_office"


async def test_join_link_queues_ahead_of_walk_ins_and_the_assigned_advisor_gets_them(client, services):
    """The API-level flow: booking → join link at the appointment time → a queue entry ahead of
    walk-ins, which the assigned advisor claims first."""
    await advisor(services, "anna")
    await advisor(services, "bert")
    booked = await (
        await client.post("/api/bookings", json=request(starts_at=at("10:00").isoformat()))
    ).json()
    assigned = (await services.scheduling.get(booked["booking_id"])).advisor
    other = "bert" if assigned == "anna" else "anna"
    join_path = "/api/bookings/join/" + booked["join_url"].rsplit("/", 1)[1]

    services.waiting.clock.set(at("09:40"))
    early = await (await client.get(join_path)).json()
    assert early["state"] == "early" and early["opens_at"] == at("09:50").isoformat()
    assert early["waiting_url"] is None

    services.waiting.clock.set(at("09:54"))
    walk_in = await client.post(
        "/api/queue", json={"office": "vhs", "language": "de", "topic": "Ohne Termin"}
    )
    assert walk_in.status == 201
    services.waiting.clock.set(at("09:56"))
    opened = await (await client.get(join_path)).json()
    assert opened["state"] == "open" and "/wait/" in opened["waiting_url"]
    assert (await (await client.get(join_path)).json())["waiting_url"] == opened["waiting_url"]
    token = opened["waiting_url"].rsplit("/wait/", 1)[1]
    entry = await services.queue.entry_for_token(token)
    assert entry.booking_id == booked["booking_id"] and entry.advisor == assigned
    assert (await services.queue.status(entry.entry_id)).position == 1
    walk_entry = (await walk_in.json())["entry_id"]
    assert (await services.queue.status(walk_entry)).position == 2
    page = await client.get(f"/wait/{token}")
    assert page.status == 200

    members = {m.username: m for m in await services.staff.members()}
    assert (await services.queue.waiting_for(members[assigned]))[0].entry_id == entry.entry_id
    assert (await services.queue.claim_next(members[assigned])).entry.entry_id == entry.entry_id
    assert (await services.queue.claim_next(members[other])).entry.entry_id == walk_entry

    services.waiting.clock.set(at("10:31"))
    assert (await (await client.get(join_path)).json())["state"] == "over"


async def test_openapi_document_describes_booking_and_queue(client, services):
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.1")
    for path in (
        "/api/queue",
        "/api/offices",
        "/api/bookings",
        "/api/bookings/{token}/cancel",
        "/api/booking/offices/{office}/services/{service}/slots",
        "/api/staff/appointments",
        "/api/questions",
        "/api/best-times",
        "/api/chatbot/messages",
        "/readyz",
    ):
        assert path in doc["paths"], path
    assert doc["paths"]["/api/bookings"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BookingRequest"
    }

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for target in refs(doc):
        assert target.rsplit("/", 1)[1] in doc["components"]["schemas"], target
    # every route of the booking API is described
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    for resource in client.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path and path.startswith(("/api/booking", "/api/staff/appointments", "/api/staff/availability")):
            for route in resource:
                if route.method != "HEAD":
                    assert (route.method, path) in described, (route.method, path)
