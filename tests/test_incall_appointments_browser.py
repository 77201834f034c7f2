"""Issue 17, items 11 and 12 in a real browser (Chromium via Playwright, the real server process).

A citizen opens the calendar: the advisor is away for the rest of this month, so it opens on next month
(the first with a free slot), books, moves the appointment on the manage page — the same reference is
shown, and the join link from the first confirmation still leads to the appointment, at its new time.
Choosing English, which no advisor of the office speaks, shows a plain message, a link to book in German
and a written-question form (which sends the question).

Screenshots (when SPRECHSTUNDE_SCREENSHOTS is set): shot-h7-moved.png, shot-h7-no-language.png.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sprechstunde.l10n import day_text, month_text, time_text
from tests.browser_support import MOBILE, add_staff, running_server, screenshot
from tests.test_booking_browser import EVERY_DAY, _cli, _wait_out_midnight

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
ADVISOR = ("deutschberaterin", "ein-langes-test-passwort-7")
BERLIN = ZoneInfo("Europe/Berlin")


def _next_month(today: date) -> date:
    return (today.replace(day=28) + timedelta(days=7)).replace(day=1)


@pytest.fixture(scope="module")
def away_server(tmp_path_factory):
    """An office open around the clock whose one advisor (German only) is away until the month ends."""
    _wait_out_midnight()
    data_dir = tmp_path_factory.mktemp("appointments")
    add_staff(data_dir, *ADVISOR, office="vhs", language="de")
    today = datetime.now(BERLIN).date()
    away = f"{today.isoformat()}..{(_next_month(today) - timedelta(days=1)).isoformat()}"
    _cli("availability", "set", ADVISOR[0], *EVERY_DAY, f"--absence={away}", data_dir=data_dir)
    offices, services = HERE / "booking_offices.toml", HERE / "booking_services.toml"
    with running_server(data_dir, "--offices", str(offices), "--services", str(services)) as server:
        yield server | {"today": today}


def test_a_move_keeps_the_reference_and_the_join_link(browser, away_server):
    from playwright.sync_api import expect

    base = away_server["base_url"]
    first_month = _next_month(away_server["today"])
    errors: list[str] = []
    page = browser.new_context(locale="de-DE", viewport=MOBILE).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))

    # the calendar opens on next month: this month has no free slot
    page.goto(base + "/termin/vhs/kurz/video")
    expect(page.get_by_role("heading", name="Tag wählen")).to_be_visible()
    expect(page.locator("#month-label")).to_have_text(month_text(first_month, "de"))
    first_day = page.locator("a.day.free").first
    expect(first_day).to_have_text("1")
    first_day.click()
    page.locator(".slot-list a").first.click()
    page.get_by_label("Ihr Name").fill("Erika Mustermann")
    page.get_by_label(re.compile("Ich habe die Datenschutzhinweise gelesen")).check()
    page.get_by_role("button", name="Termin verbindlich buchen").click()
    expect(page.get_by_role("heading", name="Ihr Termin ist gebucht")).to_be_visible()
    reference = page.locator("#booking-reference").inner_text()
    assert re.fullmatch(r"T-\d{4}-\d{6}", reference)
    manage_url = page.url.split("?")[0]
    join_url = page.locator("#join-link").get_attribute("href")
    assert join_url

    # move it to the 3rd, 10:00, on the manage page
    page.get_by_role("link", name="Termin verschieben").click()
    expect(page.get_by_role("heading", name="Neuen Termin wählen")).to_be_visible()
    expect(page.locator("#month-label")).to_have_text(month_text(first_month, "de"))
    page.locator("a.day.free", has_text=re.compile(r"^3$")).click()
    page.locator(".slot-list a", has_text="10:00").click()
    page.get_by_role("button", name="Auf diese Uhrzeit verschieben").click()
    expect(page.get_by_role("heading", name="Ihr Termin wurde verschoben")).to_be_visible()
    expect(page.locator("#booking-reference")).to_have_text(reference)
    new_day = first_month.replace(day=3)
    when = page.locator(".booking-details dd").nth(1)
    starts = datetime.combine(new_day, datetime.min.time().replace(hour=10), BERLIN)
    ends = starts + timedelta(minutes=5)
    expect(when).to_have_text(
        f"{day_text(new_day, 'de')}, {time_text(starts, 'de')} – {time_text(ends, 'de')}"
    )
    expect(page.locator("#moved-notice")).to_contain_text("Vorgangsnummer, Links und Kalendereintrag bleiben")
    assert page.url.split("?")[0] == manage_url
    assert page.locator("#join-link").get_attribute("href") == join_url
    screenshot(page, "h7-moved")

    # the join link of the first confirmation still works: it knows the new time
    page.goto(base + join_url)
    expect(page.get_by_role("heading", name="Ihr Termin beginnt bald")).to_be_visible()
    expect(page.locator("#booking-reference")).to_have_text(reference)
    opens = time_text(starts - timedelta(minutes=10), "de")
    expect(page.get_by_text(f"Der Warteraum öffnet am {day_text(new_day, 'de')} um {opens}")).to_be_visible()
    # and the first manage link shows it, not "abgesagt"
    page.goto(manage_url)
    expect(page.locator(".booking-details")).to_contain_text("10:00")
    expect(page.get_by_text("abgesagt")).to_have_count(0)
    assert errors == []


def test_a_language_without_advisors_is_said_plainly_with_alternatives(browser, away_server):
    from playwright.sync_api import expect

    base = away_server["base_url"]
    errors: list[str] = []
    page = browser.new_context(locale="de-DE", viewport=MOBILE).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base + "/termin/vhs/kurz/video")
    page.get_by_label("Sprache des Gesprächs").select_option("en")
    page.get_by_role("button", name="Freie Termine in dieser Sprache zeigen").click()

    expect(page.get_by_role("heading", name="Kein Termin in dieser Sprache")).to_be_visible()
    expect(page.locator("#unavailable-text")).to_have_text(
        "Zu „Kurzberatung“ (Volkshochschule) berät zurzeit niemand auf Englisch. "
        "Termine in dieser Sprache können Sie deshalb nicht buchen."
    )
    expect(page.locator("#calendar")).to_have_count(0)
    german = page.get_by_role("link", name="Termin auf Deutsch buchen")
    expect(german).to_be_visible()
    expect(page.get_by_role("heading", name="Frage schriftlich stellen")).to_be_visible()
    expect(page.get_by_label("Ihre Frage")).to_be_visible()
    screenshot(page, "h7-no-language")

    # the written question arrives as a ticket with a reference
    page.get_by_label("Ihre Frage").fill("Do you offer the course in English?")
    page.get_by_label("E-Mail-Adresse oder Telefonnummer für die Antwort").fill("erika@example.org")
    page.get_by_role("button", name="Frage absenden").click()
    expect(page.locator("#question-sent")).to_contain_text(re.compile(r"Ihre Vorgangsnummer: \S+"))

    # the alternative leads to the German calendar, with its free days
    page.get_by_role("link", name="Termin auf Deutsch buchen").click()
    expect(page.get_by_role("heading", name="Tag wählen")).to_be_visible()
    expect(page.locator("a.day.free").first).to_be_visible()
    expect(page.get_by_label("Sprache des Gesprächs")).to_have_value("de")
    assert errors == []
