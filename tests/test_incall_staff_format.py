"""Staff pages speak human (issue 17 item 10): the statistics CSV opens in German Excel as columns (BOM,
";", decimal comma) and keeps a machine variant (?lang=en); finished tickets stay findable (GET
/api/tickets?state=&q=, the console's filter); offices, languages, days and times as a person reads them
(web/core/staff_display.py, sprechstunde/l10n.py)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from sprechstunde import l10n
from sprechstunde.rooms import statistics
from sprechstunde.web.core.services import SERVICES
from tests.test_consultations_api import admitted, login, record
from tests.test_waiting_api import OPEN


@pytest.fixture
def services(client):
    """The app's services at an hour when every demo office is open (Tuesday 10:00 in Berlin)."""
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    return services


async def _lead_with_figures(client, services) -> None:
    today = OPEN.date()
    for rec in (
        record(today.isoformat(), 9, "resolved", 60, 600),
        record(today.isoformat(), 9, "ticket", 240, 930),
        record(today.isoformat(), 15, "abandoned", 400),
    ):
        await services.queue.log.add(rec)
    await login(client, services, name="leitung", role="lead")


async def test_statistics_csv_opens_in_german_excel_as_columns(client, services):
    await _lead_with_figures(client, services)
    exported = await client.get("/statistics.csv?office=vhs", headers={"Accept-Language": "de-DE"})
    assert exported.status == 200 and exported.content_type == "text/csv" and exported.charset == "utf-8"
    raw = await exported.read()
    assert raw.startswith(b"\xef\xbb\xbf")  # the UTF-8 BOM: Excel reads umlauts right
    text = raw.decode("utf-8-sig")
    header = text.splitlines()[0]
    assert header.startswith("day;office;queued;") and "," not in header
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert len(rows) == 1 and set(rows[0]) == set(statistics.CSV_COLUMNS)
    today = rows[0]
    assert today["day"] == OPEN.date().isoformat() and today["office"] == "vhs"
    assert today["abandoned_pct"] == "33,3" and today["resolved_first_contact_pct"] == "50,0"
    assert today["wait_p50_s"] == "60" and today["queued_09h"] == "2"
    # the German page's language picks the German file; ?lang=de says so explicitly
    explicit = await client.get("/statistics.csv?office=vhs&lang=de")
    assert (await explicit.read()) == raw


async def test_statistics_csv_machine_variant_in_english(client, services):
    await _lead_with_figures(client, services)
    exported = await client.get("/statistics.csv?office=vhs&lang=en")
    raw = await exported.read()
    assert exported.status == 200 and not raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8")
    assert text.splitlines()[0].startswith("day,office,queued,")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["abandoned_pct"] == "33.3" and rows[0]["resolved_first_contact_pct"] == "50.0"
    # a bad range stays the API's JSON error, whatever the language
    bad = await client.get("/statistics.csv?office=vhs&lang=en&from=gestern")
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid_date"


async def test_statistics_page_shows_days_offices_and_decimal_commas(client, services):
    await _lead_with_figures(client, services)
    html = await (await client.get("/statistics?office=vhs", headers={"Accept-Language": "de"})).text()
    assert l10n.short_day_text(OPEN.date(), "de") in html  # "Di., 24.11.2026"
    assert f'<th scope="row"><time datetime="{OPEN.date().isoformat()}">' in html
    assert "<td>Volkshochschule</td>" in html and "<td>vhs</td>" not in html
    assert "1,0 / 4,0 min" in html  # wait p50 / p90 in minutes, with a decimal comma
    english = await (await client.get("/statistics?office=vhs&lang=en")).text()
    assert "<td>Adult Education Centre</td>" in english and "1.0 / 4.0 min" in english


def test_short_days_as_each_language_writes_them():
    assert l10n.short_day_text(date(2026, 11, 24), "de") == "Di., 24.11.2026"
    assert l10n.short_day_text(date(2026, 11, 24), "en") == "Tue 24 Nov 2026"
    assert l10n.short_day_text(date(2026, 12, 5), "de") == "Sa., 05.12.2026"  # a column lines up
    assert l10n.decimal_symbol("de") == "," and l10n.decimal_symbol("en") == "."


async def _tickets(services):
    """Three tickets of the vhs: one still open, one in progress, one done (closed)."""
    book = services.queue.tickets
    fresh = await book.open("vhs", "Zeugnis nachreichen", topic="Sprachkurs B1", language="tr")
    working = await book.open("vhs", "Rückruf vereinbart", topic="Kursgebühr")
    closed = await book.open("vhs", "Bescheinigung per Post verschickt", topic="Teilnahmebescheinigung")
    member = await services.staff.get("berater")
    await book.update(member, working.reference, status="in_progress")
    await book.update(member, closed.reference, status="done")
    return fresh, working, closed


async def test_closed_tickets_are_found_by_state_and_search(client, services):
    await login(client, services)
    fresh, working, closed = await _tickets(services)

    async def references(query: str) -> list[str]:
        response = await client.get("/api/tickets" + query)
        assert response.status == 200, await response.text()
        return [t["reference"] for t in (await response.json())["tickets"]]

    assert set(await references("")) == {fresh.reference, working.reference, closed.reference}  # as before
    assert set(await references("?state=open")) == {fresh.reference, working.reference}
    assert await references("?state=closed") == [closed.reference]
    assert await references("?state=all&q=bescheinigung") == [closed.reference]  # topic, any case
    assert await references("?state=closed&q=PER%20POST") == [closed.reference]  # notes
    assert await references("?q=" + closed.reference.lower()) == [closed.reference]  # reference
    assert await references("?state=open&q=bescheinigung") == []
    assert await references("?q=%20%20") == await references("")  # blank search: everything
    assert await references("?status=in_progress&state=open") == [working.reference]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?state=erledigt", "invalid_state"),
        ("?q=" + "x" * 101, "invalid_search"),
        ("?status=fertig", "invalid_status"),
    ],
)
async def test_bad_ticket_filters_are_400_json(client, services, query, code):
    await login(client, services)
    response = await client.get("/api/tickets" + query)
    assert response.status == 400 and response.content_type == "application/json"
    assert (await response.json())["error"]["code"] == code


async def test_console_lists_closed_tickets_when_asked_with_names_and_office_time(client, services):
    await login(client, services)
    fresh, working, closed = await _tickets(services)
    page = await (await client.get("/console", headers={"Accept-Language": "de"})).text()
    assert fresh.reference in page and working.reference in page and closed.reference not in page
    found = await (
        await client.get("/console?state=all&q=Bescheinigung", headers={"Accept-Language": "de"})
    ).text()
    assert closed.reference in found and fresh.reference not in found
    assert 'id="ticket-search"' in found and 'value="Bescheinigung"' in found
    assert '<option value="all" selected>Alle</option>' in found
    # the office and the language by name, the time on the office's (Berlin) clock
    mine = await (await client.get("/console", headers={"Accept-Language": "de"})).text()
    assert "Volkshochschule · " + OPEN.strftime("%d.%m.%Y, %H:%M") + " · Türkçe" in mine
    assert "vhs ·" not in mine and "· tr<" not in mine
    # reopening it from the search goes back to the same filtered list
    token = (await login(client, services, name="kollegin"))["X-CSRF-Token"]
    form = {"csrf": token, "status": "open", "state": "all", "q": "Bescheinigung"}
    answer = await client.post(f"/console/tickets/{closed.reference}", data=form, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/console?state=all&q=Bescheinigung#tickets"
    assert (await services.queue.tickets.get(closed.reference)).status == "open"
    # a bad filter on the page falls back to the open tickets, an overlong search is cut: no error page
    fallback = await client.get("/console?state=kaputt")
    assert fallback.status == 200 and fresh.reference in await fallback.text()
    assert (await client.get("/console?q=" + "y" * 300)).status == 200


async def test_console_room_link_expiry_in_office_time_not_iso(client, services):
    csrf = await login(client, services)
    answer = await client.post("/console/rooms", data={"csrf": csrf["X-CSRF-Token"], "office": "vhs"})
    html = await answer.text()
    assert answer.status == 200 and '<option value="vhs">Volkshochschule</option>' in html
    expires = OPEN + timedelta(hours=2)  # rooms from the console last two hours
    assert f">{expires.strftime('%d.%m.%Y, %H:%M')}</time>" in html
    assert "+00:00</dd>" not in html


async def test_consultation_panel_names_the_language_and_office(client, services):
    await login(client, services, languages=("de", "tr"))
    running = await admitted(client, services, language="tr")
    html = await (await client.get(running["advisor_url"], headers={"Accept-Language": "en"})).text()
    assert ">Türkçe</dd>" in html
    assert "<dd>tr</dd>" not in html and ">Adult Education Centre</dd>" in html
