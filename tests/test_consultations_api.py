"""After admission: outcomes and tickets, guest links, transfers, written questions, office statistics and
the start page's "Beste Zeiten" (web/consultations/api.py, web/consultations/pages.py,
rooms/statistics.py)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from sprechstunde.rooms import statistics
from sprechstunde.rooms.consultations import ConsultationRecord
from sprechstunde.web.core.services import SERVICES
from tests.test_waiting_api import OPEN, PASSWORD, enqueue, receive

REFERENCE = re.compile(r"^SP-\d{4}-\d{6}$")


@pytest.fixture
def services(client):
    """The app's services at an hour when every demo office is open."""
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    return services


async def login(client, services, name="berater", role="advisor", offices=("vhs",), languages=("de",)):
    """Sign in (the client keeps the cookie); returns the CSRF token for the X-CSRF-Token header."""
    await services.staff.add(name, PASSWORD, role, list(offices), list(languages))
    response = await client.post("/api/login", json={"username": name, "password": PASSWORD})
    assert response.status == 200
    return {"X-CSRF-Token": (await response.json())["csrf"]}


async def admitted(client, services, csrf_owner="berater", **body) -> dict:
    """A citizen queued and claimed by `csrf_owner`; returns the entry as /api/consultations lists it."""
    queued = await enqueue(client, **body)
    member = await services.staff.get(csrf_owner)
    consultation = await services.queue.claim(member, queued["entry_id"])
    listed = await (await client.get("/api/consultations")).json()
    found = [c for c in listed["consultations"] if c["entry_id"] == queued["entry_id"]]
    assert found and found[0]["room_id"] == consultation.room.room_id
    return found[0]


async def test_closing_with_a_ticket_lists_it_on_the_console_until_done(client, services):
    csrf = await login(client, services)
    running = await admitted(client, services, note="Kurs abends")
    assert running["advisor_url"].startswith("/join/") and running["note"] == "Kurs abends"
    # the advisor's call page carries the outcome controls for exactly this entry
    page = await (await client.get(running["advisor_url"])).text()
    assert f'data-entry-id="{running["entry_id"]}"' in page and "consultation.js" in page
    console = await (await client.get("/console")).text()
    assert 'id="serving-heading"' in console and 'class="button" href="/join/' in console

    url = f"/api/consultations/{running['entry_id']}/finish"
    refused = await client.post(url, json={"outcome": "ticket", "notes": "Bescheid nachreichen"})
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "csrf"
    bad = await client.post(url, json={"outcome": "vertagt"}, headers=csrf)
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid_outcome"
    assert (await services.queue.get(running["entry_id"])).state == "called"  # nothing changed

    done = await client.post(url, json={"outcome": "ticket", "notes": "Bescheid nachreichen"}, headers=csrf)
    assert done.status == 200
    result = await done.json()
    assert result["outcome"] == "ticket" and REFERENCE.match(result["ticket"]["reference"])
    reference = result["ticket"]["reference"]
    again = await client.post(url, json={"outcome": "resolved"}, headers=csrf)
    assert again.status == 409 and (await again.json())["error"]["code"] == "not_claimed"
    assert (await (await client.get("/api/consultations")).json())["consultations"] == []

    tickets = (await (await client.get("/api/tickets?status=open")).json())["tickets"]
    assert [t["reference"] for t in tickets] == [reference]
    assert tickets[0]["notes"] == "Bescheid nachreichen" and tickets[0]["source"] == "consultation"
    console = await (await client.get("/console")).text()
    assert reference in console and 'id="serving-heading"' not in console

    patched = await client.patch(f"/api/tickets/{reference}", json={"status": "in_progress"}, headers=csrf)
    assert patched.status == 200 and (await patched.json())["status"] == "in_progress"
    no_csrf = await client.patch(f"/api/tickets/{reference}", json={"status": "done"})
    assert no_csrf.status == 403
    # the console's plain form closes it (CSRF field, redirect back)
    token = csrf["X-CSRF-Token"]
    form = await client.post(
        f"/console/tickets/{reference}", data={"csrf": token, "status": "done"}, allow_redirects=False
    )
    assert form.status == 303
    assert reference not in await (await client.get("/console")).text()
    forged = await client.post(f"/console/tickets/{reference}", data={"csrf": "x", "status": "open"})
    assert forged.status == 403
    assert (await services.queue.tickets.get(reference)).status == "done"


async def test_tickets_of_another_office_stay_hidden_and_locked(client, services):
    ticket = await services.queue.tickets.open("standesamt", "Urkunde fehlt")
    csrf = await login(client, services)
    assert (await (await client.get("/api/tickets")).json())["tickets"] == []
    foreign = await client.get("/api/tickets?office=standesamt")
    assert foreign.status == 403
    patched = await client.patch(f"/api/tickets/{ticket.reference}", json={"status": "done"}, headers=csrf)
    assert patched.status == 403 and (await patched.json())["error"]["code"] == "forbidden_office"
    unknown = await client.patch("/api/tickets/SP-1999-000001", json={"status": "done"}, headers=csrf)
    assert unknown.status == 404
    assert (await services.queue.tickets.get(ticket.reference)).status == "open"


async def test_guest_link_joins_the_same_room_and_only_for_the_advisor_serving(client, services):
    csrf = await login(client, services)
    running = await admitted(client, services)
    made = await client.post(f"/api/consultations/{running['entry_id']}/guest", headers=csrf)
    assert made.status == 201
    guest_url = (await made.json())["guest_url"]
    assert guest_url.startswith(services.config.public_url + "/join/")
    grant, room = await services.rooms.admit(guest_url.rsplit("/join/", 1)[1])
    assert grant.role == "guest" and room.room_id == running["room_id"]
    page = await client.get(guest_url.removeprefix(services.config.public_url))
    assert page.status == 200

    colleague = await login(client, services, name="kollegin")
    stranger = await client.post(f"/api/consultations/{running['entry_id']}/guest", headers=colleague)
    assert stranger.status == 409 and (await stranger.json())["error"]["code"] == "not_claimed"


async def test_transfer_puts_the_citizen_in_another_queue_and_tells_their_call(client, services):
    csrf = await login(client, services, offices=("vhs", "familienbuero"), languages=("de", "tr"))
    running = await admitted(client, services, language="tr", topic="Kita")
    room = await services.rooms.get(running["room_id"])
    call = await client.ws_connect("/ws")
    citizen_token = services.rooms.link(room, "citizen", "").rsplit("/join/", 1)[1]
    await call.send_json({"type": "hello", "id": 1, "v": 1, "token": citizen_token, "name": "Ms Y"})
    await receive(call, "welcome")

    url = f"/api/consultations/{running['entry_id']}/transfer"
    no_language = await client.post(url, json={"office": "standesamt", "note": "x"}, headers=csrf)
    assert no_language.status == 400 and (await no_language.json())["error"]["code"] == "unknown_language"
    unknown = await client.post(url, json={"office": "mond", "note": "x"}, headers=csrf)
    assert unknown.status == 400 and (await unknown.json())["error"]["code"] == "unknown_office"
    empty_note = await client.post(url, json={"office": "familienbuero", "note": " "}, headers=csrf)
    assert empty_note.status == 400
    assert (await services.queue.get(running["entry_id"])).state == "called"  # still with the advisor

    moved = await client.post(url, json={"office": "familienbuero", "note": "KiTa-Platz"}, headers=csrf)
    assert moved.status == 200
    entry = (await moved.json())["entry"]
    # the note is for the colleagues (staff only); the citizen's own note stays theirs (issue 15, 17)
    assert entry["office"] == "familienbuero" and entry["handover_note"] == "KiTa-Platz"
    assert entry["note"] is None
    assert entry["transferred_from"] == ["vhs"]
    told = await receive(call, "transferred")
    assert told["office"]["id"] == "familienbuero"
    status = await services.queue.status(running["entry_id"])
    assert status.state == "waiting" and status.position == 1
    await call.close()


async def test_written_question_becomes_a_ticket(client, services):
    body = {"office": "standesamt", "language": "de", "topic": "Geburtsurkunde", "question": "Wie lange?"}
    for bad, code in (
        ({}, "missing_contact"),
        ({"contact": "kein kontakt"}, "invalid_contact"),
        ({"contact": "a@b.de", "question": " "}, "empty_question"),
        ({"contact": "a@b.de", "office": "mond"}, "unknown_office"),
        ({"contact": "a@b.de", "language": "tr"}, "unknown_language"),
        ({"contact": "a@b.de", "question": "x" * 2001}, "notes_too_long"),
    ):
        response = await client.post("/api/questions", json=body | bad)
        assert response.status == 400, bad
        assert (await response.json())["error"]["code"] == code
    assert await services.queue.tickets.for_office("standesamt") == []

    made = await client.post("/api/questions", json=body | {"contact": "+49 221 123456"})
    assert made.status == 201
    reference = (await made.json())["reference"]
    ticket = await services.queue.tickets.get(reference)
    assert ticket.source == "question" and ticket.contact == "+49 221 123456"
    assert ticket.notes == "Wie lange?" and ticket.topic == "Geburtsurkunde" and ticket.status == "open"


def record(day: str, hour: int, outcome: str, wait: float, handling: float | None = 300.0):
    return ConsultationRecord(
        entry_id=f"{day}-{hour}-{outcome}-{wait}",
        office="vhs",
        language="de",
        outcome=outcome,
        day=day,
        hour=hour,
        arrived_at=0.0,
        wait_seconds=wait,
        handling_seconds=None if outcome == "abandoned" else handling,
    )


def test_day_figures_follow_the_definitions():
    rows = [
        record("2026-11-23", 9, "resolved", 60, 600),
        record("2026-11-23", 9, "resolved", 120, 300),
        record("2026-11-23", 10, "ticket", 600, 900),
        record("2026-11-23", 10, "no_show", 30, 5),
        record("2026-11-23", 11, "abandoned", 900),
    ]
    day = statistics.summarize("2026-11-23", "vhs", rows)
    assert (day.queued, day.consultations, day.resolved, day.tickets, day.abandoned) == (5, 4, 2, 1, 1)
    assert day.resolved_rate == pytest.approx(2 / 3) and day.abandoned_rate == pytest.approx(1 / 5)
    assert (day.wait_p50, day.wait_p90) == (60, 600)  # admitted only; nearest rank
    assert day.handling_p50 == 600  # resolved + ticket: 300, 600, 900
    assert day.load_per_hour == {9: 2, 10: 2, 11: 1}
    empty = statistics.summarize("2026-11-24", "vhs", [])
    assert empty.resolved_rate is None and empty.wait_p50 is None


def test_best_hours_need_enough_data_and_count_abandoned_waits():
    assert statistics.best_hours([]) == []
    few = [record("2026-11-23", 8, "resolved", 10)] * 2
    assert statistics.best_hours(few) == []  # two samples are no basis for advice
    rows = (
        [record(f"2026-11-2{i}", 8, "resolved", 30) for i in range(3)]
        + [record(f"2026-11-2{i}", 10, "resolved", 900) for i in range(3)]
        + [record(f"2026-11-2{i}", 14, "abandoned", 1200) for i in range(2)]
        + [record("2026-11-23", 14, "resolved", 20)]
        + [record(f"2026-11-2{i}", 16, "resolved", 60) for i in range(4)]
    )
    best = statistics.best_hours(rows, limit=2)
    assert [b.hour for b in best] == [8, 16]
    assert best[0].median_wait == 30 and best[0].samples == 3


async def test_statistics_for_leads_as_json_csv_and_page(client, services):
    today = OPEN.date()
    for rec in (
        record(today.isoformat(), 9, "resolved", 60, 600),
        record(today.isoformat(), 9, "ticket", 240, 900),
        record(today.isoformat(), 15, "abandoned", 400),
        record((today - timedelta(days=1)).isoformat(), 10, "resolved", 30, 300),
    ):
        await services.queue.log.add(rec)
    await login(client, services)  # an advisor: not for them
    refused = await client.get("/api/statistics")
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "forbidden_role"
    await login(client, services, name="leitung", role="lead")

    data = await (await client.get("/api/statistics?office=vhs")).json()
    assert data["to"] == today.isoformat() and data["offices"] == ["vhs"]
    assert [d["day"] for d in data["days"]] == [(today - timedelta(days=1)).isoformat(), today.isoformat()]
    last = data["days"][-1]
    assert last["consultations"] == 2 and last["abandoned"] == 1 and last["resolved_first_contact"] == 0.5
    assert last["load_per_hour"] == {"9": 2, "15": 1}
    assert data["total"]["consultations"] == 3 and data["total"]["wait_p50_seconds"] == 60

    for query, code in (
        ("?from=gestern", "invalid_date"),
        ("?office=standesamt", "forbidden_office"),
        ("?from=2026-12-01&to=2026-11-01", "invalid_range"),
    ):
        bad = await client.get("/api/statistics" + query)
        assert bad.status in (400, 403) and (await bad.json())["error"]["code"] == code

    exported = await client.get("/statistics.csv?office=vhs&lang=en")  # the machine variant
    assert exported.status == 200 and exported.content_type == "text/csv"
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await exported.text())))
    assert rows[-1]["day"] == today.isoformat() and rows[-1]["tickets"] == "1"
    assert rows[-1]["abandoned_pct"] == "33.3" and rows[-1]["queued_09h"] == "2"

    page = await client.get("/statistics?office=vhs")
    html = await page.text()
    assert page.status == 200 and "<svg" in html and html.count('class="bar"') >= 13
    assert "<script" not in html.split("<main", 1)[1]  # the chart needs no script


async def test_best_times_are_empty_until_there_is_data(client, services):
    empty = await (await client.get("/api/best-times")).json()
    assert empty["hours"] == [] and empty["days"] == 28
    for days_ago in range(3):
        day = (OPEN.date() - timedelta(days=days_ago)).isoformat()
        await services.queue.log.add(record(day, 9, "resolved", 45))
    hours = (await (await client.get("/api/best-times?office=vhs")).json())["hours"]
    assert hours == [{"hour": 9, "median_wait_seconds": 45, "samples": 3}]
    assert (await client.get("/api/best-times?office=mond")).status == 400
