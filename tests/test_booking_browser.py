"""Real-browser test of booking (Chromium via Playwright, the real server process): start page →
booking steps → confirmation → join link → the waiting room shows the citizen waiting; the assigned
advisor sees the appointment on /console/appointments and the citizen first in the console's queue.

The server has no clock hook, so the clock is made to fit instead: an office open around the clock and
five-minute slots (tests/booking_*.toml), so the earliest slot starts within five minutes and its join
link is already open (it opens 10 minutes before the start) — "at the appointment time" in real time.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.browser_support import DESKTOP, MOBILE, ROOT, running_server, screenshot

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
ADVISOR = ("terminberater", "ein-langes-test-passwort-9")
EVERY_DAY = [f"--day={d}=00:00-23:59" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]


def _cli(*args: str, data_dir: Path, stdin: str | None = None) -> None:
    command = [sys.executable, "-m", "sprechstunde", *args, "--data-dir", str(data_dir)]
    subprocess.run(command, cwd=ROOT, input=stdin, text=True, check=True, timeout=30, capture_output=True)


@pytest.fixture(scope="module")
def booking_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("booking")
    _cli(
        "user",
        "add",
        ADVISOR[0],
        "--office",
        "vhs",
        "--password-stdin",
        data_dir=data_dir,
        stdin=ADVISOR[1] + "\n",
    )
    _cli("availability", "set", ADVISOR[0], *EVERY_DAY, data_dir=data_dir)
    offices, services = HERE / "booking_offices.toml", HERE / "booking_services.toml"
    with running_server(data_dir, "--offices", str(offices), "--services", str(services)) as server:
        yield server


def _wait_out_midnight() -> None:
    now = datetime.now(ZoneInfo("Europe/Berlin"))
    if now.hour == 23 and now.minute >= 50:
        time.sleep((60 - now.minute) * 60 - now.second + 2)


def test_book_then_join_the_waiting_room(browser, booking_server):
    from playwright.sync_api import expect

    _wait_out_midnight()
    base = booking_server["base_url"]
    errors: list[str] = []
    context = browser.new_context(locale="de-DE", viewport=MOBILE)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(base + "/")
    page.get_by_role("link", name="Termin buchen").click()
    expect(page.get_by_role("heading", name="Welche Beratungsstelle?")).to_be_visible()
    page.get_by_role("link", name="Volkshochschule").click()
    page.get_by_role("link", name=re.compile("Kurzberatung")).click()
    # one channel only: straight to the calendar; today has free slots
    expect(page.get_by_role("heading", name="Tag wählen")).to_be_visible()
    page.locator("a.day.free").first.click()
    expect(page.get_by_role("heading", name=re.compile("Freie Uhrzeiten am"))).to_be_visible()
    page.locator(".slot-list a").first.click()
    expect(page.get_by_role("heading", name="Ihre Angaben")).to_be_visible()
    screenshot(page, "booking-form-mobile")

    # without consent: a clear message, the name kept
    page.get_by_label("Ihr Name").fill("Erika Mustermann")
    page.get_by_role("button", name="Termin verbindlich buchen").click()
    expect(page.get_by_role("alert")).to_contain_text("Datenschutzhinweise gelesen haben")
    expect(page.get_by_label("Ihr Name")).to_have_value("Erika Mustermann")
    page.get_by_label(re.compile("Ich habe die Datenschutzhinweise gelesen")).check()
    page.get_by_role("button", name="Termin verbindlich buchen").click()

    expect(page.get_by_role("heading", name="Ihr Termin ist gebucht")).to_be_visible()
    expect(page.locator("#booking-reference")).to_have_text(re.compile(r"T-\d{4}-\d{6}"))
    expect(page.locator("#mail-notice")).to_contain_text("Es wird keine E-Mail versendet")
    expect(page.locator("#ics-link")).to_be_visible()
    screenshot(page, "booking-confirmation-mobile")
    with page.expect_download() as download:
        page.locator("#ics-link").click()
    assert download.value.suggested_filename.endswith(".ics")

    # the appointment begins within five minutes: the join link leads into the waiting room
    page.get_by_role("link", name="Zur Videoberatung").click()
    page.wait_for_url("**/wait/**")
    expect(page.get_by_role("heading", name="Sie sind im Warteraum")).to_be_visible()
    expect(page.locator("#wait-position")).to_have_text("1")
    screenshot(page, "booking-waiting-mobile")

    # the advisor sees the appointment and the citizen waiting in the console
    advisor = browser.new_context(locale="de-DE", viewport=DESKTOP).new_page()
    advisor.on("pageerror", lambda error: errors.append(f"advisor: {error}"))
    advisor.goto(base + "/login")
    advisor.get_by_label("Benutzername").fill(ADVISOR[0])
    advisor.get_by_label("Passwort").fill(ADVISOR[1])
    advisor.get_by_role("button", name="Anmelden").click()
    expect(advisor.locator("#queue-list li").first).to_contain_text("Kurzberatung")
    advisor.get_by_role("link", name="Termine").click()
    expect(advisor.locator("#appointments-today .appointment.mine")).to_contain_text("Erika Mustermann")
    expect(advisor.locator("#appointments-today .appointment.mine")).to_contain_text("im Warteraum")
    screenshot(advisor, "appointments-desktop")
    assert errors == []
