"""Issue 17 items 1 and 2: the citizen's end screen after the advisor closes the consultation, and the
anonymous one-question survey with its results in the statistics (rooms/feedback.py,
web/consultations/ending.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from sprechstunde.rooms import statistics
from sprechstunde.rooms.consultations import ConsultationRecord
from sprechstunde.rooms.feedback import FEEDBACK_KIND, FeedbackAnswer
from sprechstunde.web.core.security import mask_tokens
from sprechstunde.web.core.services import SERVICES
from tests.test_consultations_api import admitted, login
from tests.test_waiting_api import OPEN, enqueue, receive, token_from

PDF = b"%PDF-1.7\n" + b"x" * 2000 + b"\n%%EOF\n"


@pytest.fixture
def services(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    return services


async def in_call(client, services, **body):
    """An advisor serving a citizen whose call socket is open: (csrf, entry, room, citizen token, ws)."""
    csrf = await login(client, services)
    running = await admitted(client, services, **body)
    room = await services.rooms.get(running["room_id"])
    citizen = services.rooms.link(room, "citizen", "").rsplit("/join/", 1)[1]
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "id": 1, "v": 1, "token": citizen, "name": "Frau Y"})
    await receive(ws, "welcome")
    return csrf, running, room, citizen, ws


async def end_token(client, room_id: str, join_token: str):
    return await client.post(f"/api/rooms/{room_id}/ending", headers={"X-Join-Token": join_token})


async def test_finish_ends_the_call_and_the_end_screen_keeps_ticket_and_documents(client, services):
    csrf, running, room, citizen, ws = await in_call(client, services)
    uploaded = await client.post(
        f"/api/rooms/{room.room_id}/documents",
        data=PDF,
        headers={
            "X-Join-Token": citizen,
            "X-File-Name": "Bescheid.pdf",
            "Content-Type": "application/octet-stream",
        },
    )
    assert uploaded.status == 201
    document_id = (await uploaded.json())["id"]
    before = await end_token(client, room.room_id, citizen)
    assert before.status == 404 and (await before.json())["error"]["code"] == "not_ended"

    url = f"/api/consultations/{running['entry_id']}/finish"
    done = await client.post(url, json={"outcome": "ticket", "notes": "intern: Akte 7"}, headers=csrf)
    assert done.status == 200
    reference = (await done.json())["ticket"]["reference"]
    told = await receive(ws, "consultation-ended")
    # the room also holds guests: the message carries the outcome only, never a token or a note
    assert told == {"type": "consultation-ended", "outcome": "ticket"}
    await ws.close()

    guest = services.rooms.link(room, "guest", "").rsplit("/join/", 1)[1]
    refused = await end_token(client, room.room_id, guest)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "forbidden_role"
    got = await end_token(client, room.room_id, citizen)
    assert got.status == 200
    token = (await got.json())["token"]

    ending = await (await client.get(f"/api/endings/{token}?lang=en")).json()
    assert ending["outcome"] == "ticket" and ending["ticket"] == reference
    assert ending["office"] == {"id": "vhs", "name": services.waiting.offices.require("vhs").name("en")}
    assert ending["survey_answered"] is False and ending["booking_url"].startswith("/termin")
    kept = room.expires_at + services.documents.retention
    assert ending["kept_until"] == datetime.fromtimestamp(kept, UTC).isoformat(timespec="seconds")
    assert "intern" not in str(ending) and "berater" not in str(ending)  # no notes, no advisor
    [document] = ending["documents"]
    assert (
        document["id"] == document_id
        and document["name"] == "Bescheid.pdf"
        and document["url"].startswith(f"/api/endings/{token}/")
    )
    redirect = await client.get(document["url"], allow_redirects=False)
    assert redirect.status == 303 and redirect.headers["Location"].startswith("/api/download/")
    downloaded = await client.get(redirect.headers["Location"])
    assert downloaded.status == 200 and await downloaded.read() == PDF
    gone = await client.get(f"/api/endings/{token}/documents/nope", allow_redirects=False)
    assert gone.status == 404

    # a reload shows the end screen again: the join page carries the end token for the citizen only
    page = await (await client.get(f"/join/{citizen}")).text()
    assert f'data-end-token="{token}"' in page and 'id="ended"' in page
    advisor_page = await (await client.get(services.rooms.link(room, "advisor", ""))).text()
    assert 'data-end-token=""' in advisor_page


async def test_the_reloaded_waiting_page_shows_the_end(client, services):
    csrf = await login(client, services)
    queued = await enqueue(client)
    member = await services.staff.get("berater")
    consultation = await services.queue.claim(member, queued["entry_id"])
    waiting = f"/wait/{token_from(queued['waiting_url'])}"
    assert 'data-end-token=""' in await (await client.get(waiting)).text()
    url = f"/api/consultations/{queued['entry_id']}/finish"
    assert (await client.post(url, json={"outcome": "resolved"}, headers=csrf)).status == 200
    page = await (await client.get(waiting)).text()
    ending = await services.queue.get(queued["entry_id"])
    assert ending.state == "done" and consultation.room.room_id == ending.room_id
    assert 'data-end-token="' in page and 'data-end-token=""' not in page


async def test_feedback_is_anonymous_and_once_per_consultation(client, services):
    csrf, running, room, citizen, ws = await in_call(client, services)
    url = f"/api/consultations/{running['entry_id']}/finish"
    assert (await client.post(url, json={"outcome": "resolved"}, headers=csrf)).status == 200
    await ws.close()
    token = (await (await end_token(client, room.room_id, citizen)).json())["token"]

    answered = await client.post(
        "/api/feedback", json={"token": token, "score": 4, "comment": "  Sehr freundlich\u202e!  "}
    )
    assert answered.status == 201 and (await answered.json()) == {"thanks": True}
    [(key, record)] = await services.store.scan(FEEDBACK_KIND)
    day = OPEN.date().isoformat()
    # anonymous: office, day, score and the cleaned comment; no entry, room, token or time of day
    assert record == {"office": "vhs", "day": day, "score": 4, "comment": "Sehr freundlich!"}
    assert key.startswith(f"{day}/vhs/") and running["entry_id"] not in key and room.room_id not in key

    again = await client.post("/api/feedback", json={"token": token, "score": 1})
    assert again.status == 409 and (await again.json())["error"]["code"] == "answered"
    assert len(await services.store.scan(FEEDBACK_KIND)) == 1
    assert (await (await client.get(f"/api/endings/{token}")).json())["survey_answered"] is True

    await login(client, services, name="leitung", role="lead")
    data = await (await client.get("/api/statistics?office=vhs")).json()
    assert data["total"]["feedback_count"] == 1 and data["total"]["feedback_average"] == 4.0
    today = [d for d in data["days"] if d["day"] == day][0]
    assert today["feedback_distribution"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}
    exported = await (await client.get("/statistics.csv?office=vhs&lang=en")).text()
    dialect = csv.Sniffer().sniff(exported.splitlines()[0], delimiters=",;")
    rows = list(csv.DictReader(io.StringIO(exported), dialect=dialect))
    assert rows[-1]["feedback_count"] == "1" and rows[-1]["feedback_4"] == "1"
    assert rows[-1]["feedback_avg"].replace(",", ".").startswith("4.0")
    html = await (await client.get("/statistics?office=vhs")).text()
    average = html.split('id="stats-feedback"', 1)[1].split("</div>", 1)[0]
    count = html.split('id="stats-feedback-count"', 1)[1].split("</div>", 1)[0]
    assert "<dd>4,0</dd>" in average and "<dd>1</dd>" in count


async def test_bad_feedback_is_refused_with_a_clear_error(client, services):
    csrf, running, room, citizen, ws = await in_call(client, services)
    url = f"/api/consultations/{running['entry_id']}/finish"
    assert (await client.post(url, json={"outcome": "no_show"}, headers=csrf)).status == 200
    await ws.close()
    token = (await (await end_token(client, room.room_id, citizen)).json())["token"]
    for body, status, code in (
        ({"token": token, "score": 0}, 400, "invalid_score"),
        ({"token": token, "score": 6}, 400, "invalid_score"),
        ({"token": token, "score": "4"}, 400, "invalid_score"),
        ({"token": token, "score": 4.5}, 400, "invalid_score"),
        ({"token": token, "score": True}, 400, "invalid_score"),
        ({"token": token}, 400, "invalid_score"),
        ({"token": token, "score": 3, "comment": "x" * 1001}, 400, "comment_too_long"),
        ({"token": token, "score": 3, "comment": 7}, 400, "invalid_comment"),
        ({"score": 3}, 400, "invalid_token"),
        ({"token": token[:-2] + "AA", "score": 3}, 403, "invalid_token"),
        ({"token": citizen, "score": 3}, 403, "invalid_token"),  # a join link is not an end token
    ):
        refused = await client.post("/api/feedback", json=body)
        assert refused.status == status, (body, await refused.text())
        assert (await refused.json())["error"]["code"] == code
    assert await services.store.scan(FEEDBACK_KIND) == []
    assert (await client.get("/api/endings/nonsense")).status == 403
    still = await client.post("/api/feedback", json={"token": token, "score": 2})
    assert still.status == 201  # the refusals used nothing up


def test_daily_rows_carry_the_survey_per_office_and_day():
    record = ConsultationRecord("e1", "vhs", "de", "resolved", "2026-11-24", 9, 0.0, 60.0, 300.0)
    answers = [
        FeedbackAnswer("vhs", "2026-11-24", 5),
        FeedbackAnswer("vhs", "2026-11-24", 2, "zu lange gewartet"),
        FeedbackAnswer("standesamt", "2026-11-25", 4),
    ]
    rows = statistics.daily([record], answers)
    assert [(r.day, r.office) for r in rows] == [("2026-11-24", "vhs"), ("2026-11-25", "standesamt")]
    assert (
        rows[0].feedback == {2: 1, 5: 1} and rows[0].feedback_average == 3.5 and rows[0].feedback_count == 2
    )
    assert rows[1].consultations == 0 and rows[1].feedback_average == 4.0
    assert statistics.summarize("", "", [record]).feedback_average is None
    header, first, _ = statistics.to_csv(rows).splitlines()
    assert "feedback_count" in header and "feedback_5" in header


def test_end_tokens_stay_out_of_the_logs():
    assert mask_tokens("/api/endings/abc.def/documents/x1") == "/api/endings/…/documents/x1"
