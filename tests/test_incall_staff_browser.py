"""Real-browser test: staff pages speak human (issue 17 item 10). The browser runs in New York; the office
is in Berlin. The console shows an appointment at the office's "09:35", the office and the language by
name; the appointments page shows the office's times; a closed ticket is found again by the console's
filter and search; the statistics page writes decimal commas.

Same set-up as tests/test_booking_browser.py (an office open around the clock, five-minute slots, so the
next slot's join link is open now); consultation records and tickets are written into the server's store
before it starts. Screenshots: SPRECHSTUNDE_SHOTS=/tmp/shots → h6-console.png, h6-tickets.png,
h6-statistics.png.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sprechstunde.rooms.consultations import ConsultationLog, ConsultationRecord
from sprechstunde.rooms.offices import load_offices
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.rooms.tickets import TicketBook
from sprechstunde.store import SQLiteStore
from sprechstunde.web.core.config import DATABASE_FILE
from tests.browser_support import DESKTOP, add_staff, running_server, sign_in
from tests.test_booking_browser import EVERY_DAY, _cli, _wait_out_midnight

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
OFFICES = HERE / "booking_offices.toml"
SERVICES = HERE / "booking_services.toml"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = "America/New_York"
ADVISOR = ("terminberaterin", "ein-langes-test-passwort-6")
LEAD = ("leiterin", "ein-langes-test-passwort-5")


def _shot(page, name: str) -> None:
    directory = os.environ.get("SPRECHSTUNDE_SHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / f"h6-{name}.png"), full_page=True)


async def _seed(data_dir: Path, today: date) -> None:
    """What an office has after a day's work: three consultation records and two tickets, one closed."""
    store = SQLiteStore(data_dir / DATABASE_FILE)
    try:
        log = ConsultationLog(store)
        for hour, outcome, wait, handling in (
            (9, "resolved", 60, 570),
            (9, "ticket", 240, 930),
            (15, "abandoned", 400, None),
        ):
            await log.add(
                ConsultationRecord(
                    entry_id=f"seed-{hour}-{outcome}", office="vhs", language="de", outcome=outcome,
                    day=today.isoformat(), hour=hour, arrived_at=0.0, wait_seconds=wait,
                    handling_seconds=handling,
                )
            )  # fmt: skip
        book = TicketBook(store, load_offices(OFFICES))
        await book.open("vhs", "Rückruf am Montag", topic="Kursgebühr", language="de")
        closed = await book.open("vhs", "Per Post verschickt", topic="Teilnahmebescheinigung", language="tr")
        admin = StaffMember(username="seed", role="admin", offices=["vhs"])
        await book.update(admin, closed.reference, status="done")
    finally:
        await store.close()


@pytest.fixture(scope="module")
def staff_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("staff-format")
    add_staff(data_dir, *ADVISOR, office="vhs")
    _cli("availability", "set", ADVISOR[0], *EVERY_DAY, data_dir=data_dir)
    _cli("user", "add", LEAD[0], "--office", "vhs", "--role", "lead", "--password-stdin",
         data_dir=data_dir, stdin=LEAD[1] + "\n")  # fmt: skip
    with ThreadPoolExecutor(1) as pool:  # its own event loop: the test session may be running one
        pool.submit(asyncio.run, _seed(data_dir, datetime.now(BERLIN).date())).result()
    with running_server(data_dir, "--offices", str(OFFICES), "--services", str(SERVICES)) as server:
        yield server


def _json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _book_and_join(base: str) -> datetime:
    """A citizen books the next five-minute slot and opens the join link: they wait in the queue."""
    today = datetime.now(BERLIN).date()
    slots = []
    for day in (today, today + timedelta(days=1)):
        slots = _json(f"{base}/api/booking/offices/vhs/services/kurz/slots?date={day}")["slots"]
        if slots:
            break
    booking = _json(
        f"{base}/api/bookings",
        {"office": "vhs", "service": "kurz", "channel": "video", "starts_at": slots[0]["starts_at"],
         "name": "Erika Mustermann", "consent": True, "language": "de"},
    )  # fmt: skip
    token = booking["join_url"].rstrip("/").rsplit("/", 1)[1]
    state = _json(f"{base}/api/bookings/join/{token}")
    assert state["state"] == "open", state
    return datetime.fromisoformat(slots[0]["starts_at"])


def _sign_in(browser, base: str, who: tuple[str, str]):
    context = browser.new_context(locale="de-DE", timezone_id=NEW_YORK, viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, base, who[0], who[1])
    return page, errors


def test_console_appointments_and_tickets_in_the_offices_time_and_words(browser, staff_server):
    from playwright.sync_api import expect

    _wait_out_midnight()
    base = staff_server["base_url"]
    starts = _book_and_join(base)
    office_hhmm = starts.astimezone(BERLIN).strftime("%H:%M")
    browser_hhmm = starts.astimezone(ZoneInfo(NEW_YORK)).strftime("%H:%M")
    assert office_hhmm != browser_hhmm

    page, errors = _sign_in(browser, base, ADVISOR)
    assert page.evaluate("() => Intl.DateTimeFormat().resolvedOptions().timeZone") == NEW_YORK
    entry = page.locator("#queue-list .queue-entry").first
    expect(entry).to_contain_text(f"Termin {office_hhmm} Uhr")
    expect(entry).not_to_contain_text(browser_hhmm)
    expect(entry.locator(".queue-fact", has_text="Stelle").locator("dd")).to_have_text("Volkshochschule")
    expect(entry.locator(".queue-fact", has_text="Sprache").locator("dd")).to_have_text("Deutsch")

    # the open ticket is listed with the office's name, the office's time and the language's name; the
    # closed one is not, until the advisor looks for it
    tickets = page.locator("#tickets")
    expect(tickets.locator(".ticket")).to_have_count(1)
    expect(tickets.locator(".ticket")).to_contain_text("Kursgebühr")
    expect(tickets.locator(".ticket .hint").first).to_have_text(
        re.compile(r"^Volkshochschule · \d\d\.\d\d\.\d{4}, \d\d:\d\d · Deutsch$")
    )
    expect(tickets).not_to_contain_text("Teilnahmebescheinigung")
    _shot(page, "console")

    tickets.get_by_label("Anzeigen").select_option(label="Alle")
    tickets.get_by_label(re.compile("^Suchen")).fill("teilnahme")
    tickets.get_by_role("button", name="Tickets anzeigen").click()
    found = page.locator("#tickets .ticket")
    expect(found).to_have_count(1)
    expect(found).to_contain_text("Teilnahmebescheinigung")
    expect(found).to_contain_text("Per Post verschickt")
    expect(found.locator(".ticket-status")).to_have_text("erledigt")
    expect(found.locator(".hint").first).to_contain_text("Volkshochschule")
    expect(found.locator(".hint").first).to_contain_text("Türkçe")
    expect(page.get_by_label(re.compile("^Suchen"))).to_have_value("teilnahme")
    _shot(page, "tickets")

    # the appointments page: the office's times, whatever the browser's zone
    page.goto(base + "/console/appointments")
    ends = starts + timedelta(minutes=5)
    mine = page.locator(".appointment.mine").first
    expect(mine).to_contain_text(f"{office_hhmm}–{ends.astimezone(BERLIN):%H:%M} Erika Mustermann")
    expect(mine.locator(".meta").first).to_contain_text("Kurzberatung · Volkshochschule · Deutsch · Video")
    expect(mine).not_to_contain_text(browser_hhmm)
    _shot(page, "appointments")
    assert errors == []


def test_statistics_page_with_names_days_and_decimal_commas(browser, staff_server):
    from playwright.sync_api import expect

    base = staff_server["base_url"]
    page, errors = _sign_in(browser, base, LEAD)
    page.get_by_role("link", name="Statistik der Beratungsstelle").click()
    page.get_by_label("Beratungsstelle").select_option(label="Volkshochschule")
    page.get_by_role("button", name="Anzeigen").click()
    summary = page.locator(".stats-summary")
    expect(summary.locator("div", has_text="Wartezeit")).to_contain_text("1,0 / 4,0 min")
    expect(summary).to_contain_text("50 %")
    row = page.locator(".stats-table tbody tr").first
    expect(row.locator("th")).to_have_text(re.compile(r"^(Mo|Di|Mi|Do|Fr|Sa|So)\., \d\d\.\d\d\.\d{4}$"))
    expect(row.locator("td").first).to_have_text("Volkshochschule")
    expect(row).to_contain_text("9,5")  # handling p50: 570 s in minutes
    _shot(page, "statistics")
    assert errors == []
