"""Real-browser test of the waiting room: start page → waiting room → console → call, through the real
server process (Debian chromium via Playwright, fake camera and microphone; see tests/browser_support.py).

The server runs with tests/waiting_offices.toml, whose office is open around the clock, so the test does
not depend on the time of day.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.browser_support import (
    DESKTOP,
    MOBILE,
    add_staff,
    assert_media_flows,
    running_server,
    screenshot,
    sign_in,
    wait_for_decoded_video,
)

pytestmark = pytest.mark.browser

OFFICES = Path(__file__).with_name("waiting_offices.toml")
ADVISOR = ("berater", "ein-langes-test-passwort-7")


@pytest.fixture(scope="module")
def waiting_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("waiting")
    add_staff(data_dir, *ADVISOR, office="buergertelefon")
    with running_server(data_dir, "--offices", str(OFFICES)) as server:
        yield server


def _wait_out_closed_minute() -> None:
    """The test office closes 23:59–00:00 (Berlin): never start a consultation across that minute."""
    now = datetime.now(ZoneInfo("Europe/Berlin"))
    if now.hour == 23 and now.minute >= 57:
        time.sleep((60 - now.minute) * 60 - now.second + 2)


def _page(browser, viewport: dict, errors: list, name: str):
    context = browser.new_context(locale="de-DE", viewport=viewport)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{name}: {error}"))
    return page


def _request_consultation(page, base_url: str, topic: str, name: str, language: str = "de") -> None:
    from playwright.sync_api import expect

    page.goto(base_url + "/")
    expect(page.get_by_role("button", name="Jetzt Videoberatung starten")).to_be_enabled()
    page.get_by_label("Beratungsstelle").select_option("buergertelefon")
    page.get_by_label("Sprache des Gesprächs").select_option(language)
    page.get_by_label("Worum geht es?").fill(topic)
    page.get_by_role("button", name="Jetzt Videoberatung starten").click()
    page.wait_for_url("**/wait/**")
    expect(page.get_by_role("heading", name="Sie sind im Warteraum")).to_be_visible()
    page.wait_for_function("() => document.getElementById('preview-video').videoWidth > 0", timeout=10000)
    page.get_by_label("Ihr Name").fill(name)


def _in_call(page) -> None:
    page.wait_for_function(
        "() => window.sprechstunde && window.sprechstunde.state === 'in-call'", timeout=15000
    )


def test_waiting_room_to_call(browser, waiting_server):
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    base = waiting_server["base_url"]
    errors: list[str] = []

    # The start page refuses an empty topic with a clear message, without a request.
    first = _page(browser, MOBILE, errors, "first")
    first.goto(base + "/")
    expect(first.get_by_role("button", name="Jetzt Videoberatung starten")).to_be_enabled()
    screenshot(first, "start-mobile")
    first.get_by_role("button", name="Jetzt Videoberatung starten").click()
    expect(first.get_by_text("Bitte beschreiben Sie Ihr Anliegen in ein paar Worten.")).to_be_visible()
    # A closed office: a clear sentence and what to do instead, and the citizen stays on the start page.
    first.get_by_label("Beratungsstelle").select_option("archiv")
    first.get_by_label("Worum geht es?").fill("Akteneinsicht")
    first.get_by_role("button", name="Jetzt Videoberatung starten").click()
    expect(first.locator("#start-error")).to_contain_text("Die Beratungsstelle hat gerade geschlossen.")
    expect(first.locator("#start-error")).to_contain_text("vereinbaren Sie einen Termin")
    expect(first.locator("#start-error").get_by_role("link", name="Termin buchen")).to_have_attribute(
        "href", "/termin"
    )
    assert first.url.rstrip("/") == base
    # ... and offers to leave the question in writing: a ticket with a reference number.
    question = first.locator("#question")
    expect(question.get_by_role("heading", name="Frage schriftlich stellen")).to_be_visible()
    question.get_by_label("Ihre Frage", exact=True).fill("Kann ich die Akte auch online einsehen?")
    question.get_by_label("E-Mail-Adresse oder Telefonnummer für die Antwort").fill("keine")
    question.get_by_role("button", name="Frage absenden").click()
    expect(first.locator("#question-error")).to_have_text(
        "Das ist weder eine E-Mail-Adresse noch eine Telefonnummer."
    )
    question.get_by_label("E-Mail-Adresse oder Telefonnummer für die Antwort").fill("frau.y@example.org")
    question.get_by_role("button", name="Frage absenden").click()
    expect(first.locator("#question-sent")).to_contain_text(re.compile(r"Vorgangsnummer: SP-\d{4}-\d{6}"))

    # First citizen: position 1.
    _request_consultation(first, base, "Wohngeld <b>Antrag</b>", "Frau Yılmaz")
    expect(first.locator("#wait-position")).to_have_text("1")
    expect(first.locator("#wait-ahead")).to_have_text("Sie sind als Nächstes dran.")
    # Nobody is signed in yet: the page says so.
    expect(first.locator("#wait-nobody")).to_be_visible()
    first.get_by_label("Worum geht es genau? (freiwillig)").fill("Ich habe den Bescheid schon dabei.")
    first.get_by_role("button", name="Notiz senden").click()
    expect(first.locator("#note-feedback")).to_have_text("Ihre Notiz wurde übermittelt.")

    # Second citizen: position 2.
    second = _page(browser, MOBILE, errors, "second")
    _request_consultation(second, base, "Meldebescheinigung", "Herr Nowak")
    expect(second.locator("#wait-position")).to_have_text("2")
    screenshot(second, "waiting-mobile")

    # The advisor signs in and sees both, the first one first, with the note as text.
    advisor = _page(browser, DESKTOP, errors, "advisor")
    sign_in(advisor, base, ADVISOR[0], ADVISOR[1])
    entries = advisor.locator("#queue-list .queue-entry")
    expect(entries).to_have_count(2)
    expect(entries.nth(0).locator(".queue-topic")).to_have_text("Wohngeld <b>Antrag</b>")
    expect(entries.nth(0)).to_contain_text("Ich habe den Bescheid schon dabei.")
    expect(entries.nth(1).locator(".queue-topic")).to_have_text("Meldebescheinigung")
    assert advisor.locator("#queue-list b").count() == 0
    expect(advisor.get_by_role("button", name="Aufrufen: Wohngeld <b>Antrag</b>")).to_be_visible()
    # An advisor is online now: the citizens' pages count them.
    expect(first.locator("#wait-advisors")).to_have_text("1")
    expect(first.locator("#wait-nobody")).to_be_hidden()
    screenshot(advisor, "console-desktop")
    # 360 px wide: nothing sticks out sideways (console and waiting room).
    for page, name in ((advisor, "console-360"), (second, "waiting-360")):
        size = page.viewport_size
        page.set_viewport_size({"width": 360, "height": 740})
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, name
        screenshot(page, name)
        page.set_viewport_size(size)

    # Nobody online speaks Turkish: the citizen is told so and can continue in German (a new place, last).
    third = _page(browser, MOBILE, errors, "third")
    _request_consultation(third, base, "Kindergeld", "Bay Demir", language="tr")
    expect(third.locator("#wait-language")).to_be_visible()
    expect(third.locator("#wait-language")).to_contain_text("Deutsch")
    booking = third.get_by_role("link", name="Termin buchen")
    expect(booking).to_have_attribute("href", "/termin/buergertelefon")
    expect(third.locator("#wait-estimate")).to_have_text("keine Schätzung möglich")
    screenshot(third, "waiting-language-mobile")
    old_url = third.url
    third.get_by_role("button", name="Auf Deutsch weitermachen").click()
    third.wait_for_url(lambda url: "/wait/" in url and url != old_url)
    expect(third.locator("#wait-position")).to_have_text("3")
    expect(third.locator("#wait-language")).to_be_hidden()
    expect(entries).to_have_count(3)
    expect(entries.nth(2).locator(".queue-topic")).to_have_text("Kindergeld")

    # A reload within the grace period keeps the place.
    second.reload()
    expect(second.locator("#wait-position")).to_have_text("2")

    # "Nächste Person": the advisor goes to the room, the first citizen moves into the call on the same page.
    first.evaluate("window.__sameDocument = true")
    advisor.get_by_role("button", name="Nächste Person").click()
    advisor.wait_for_url("**/join/**")  # straight into the call: no "Beitreten" (issue 17, item 9)
    for page in (first, advisor):
        _in_call(page)
    assert first.evaluate("window.__sameDocument") is True  # no reload
    assert "/wait/" in first.url

    # The second citizen moves up from 2 to 1.
    expect(second.locator("#wait-position")).to_have_text("1")
    expect(second.locator("#wait-ahead")).to_have_text("Sie sind als Nächstes dran.")
    # The third citizen moved up to 2; then leaves the waiting room for good.
    expect(third.locator("#wait-position")).to_have_text("2")
    third.get_by_role("button", name="Warteraum verlassen").click()
    expect(third.get_by_role("heading", name="Sie sind nicht mehr im Warteraum")).to_be_visible()
    expect(third.locator("#wait-gone-text")).to_have_text(
        "Sie haben den Warteraum verlassen. Ihr Platz wurde freigegeben."
    )
    # Only the two in the call and the next one keep their cameras running.
    assert not errors, errors
    third.context.close()

    # Both decode each other's video (getStats: inbound framesDecoded keeps rising); the name came along.
    for page in (first, advisor):
        wait_for_decoded_video(page)
    assert_media_flows({"citizen": first, "advisor": advisor})
    citizen_id = first.evaluate("window.sprechstunde.participantId")
    expect(advisor.locator(f'.tile[data-participant-id="{citizen_id}"]')).to_contain_text("Frau Yılmaz")
    screenshot(first, "waiting-call-mobile")

    # The advisor's call page: the citizen's concern, a guest link, and the outcome → a ticket.
    panel = advisor.locator("#consultation")
    expect(panel.get_by_role("heading", name="Beratung: Wohngeld <b>Antrag</b>")).to_be_visible()
    advisor.get_by_role("button", name="Gast-Link erzeugen").click()
    expect(advisor.locator("#guest-url")).to_have_value(re.compile(r"^http://.+/join/"))
    advisor.get_by_label("Nacharbeit nötig – Vorgang (Ticket) anlegen").check()
    advisor.get_by_label("Notizen").fill("Bescheid vom Vermieter fehlt")
    advisor.get_by_role("button", name="Beratung abschließen").click()
    expect(advisor.locator("#consultation-status")).to_contain_text(re.compile(r"Ticket SP-\d{4}-\d{6}"))
    reference = re.search(r"SP-\d{4}-\d{6}", advisor.locator("#consultation-status").inner_text()).group(0)
    screenshot(advisor, "consultation-closed-desktop")
    first.context.close()

    # Back on the console: the ticket is listed; the next citizen is transferred to another office.
    advisor.goto(base + "/console")
    expect(advisor.locator("#tickets")).to_contain_text(reference)
    expect(advisor.locator("#tickets")).to_contain_text("Bescheid vom Vermieter fehlt")
    second.evaluate("window.__sameDocument = true")
    advisor.get_by_role("button", name="Nächste Person").click()
    advisor.wait_for_url("**/join/**")  # straight into the call: no "Beitreten" (issue 17, item 9)
    for page in (second, advisor):
        _in_call(page)
    advisor.get_by_text("An eine andere Stelle übergeben").click()  # folded away to keep the panel short
    advisor.get_by_label("Stelle", exact=True).select_option("familienbuero")
    advisor.get_by_label("Notiz für die Kolleg*innen").fill("Fragt nach KiTa-Platz")
    advisor.get_by_role("button", name="In deren Warteschlange übergeben").click()
    expect(advisor.locator("#consultation-status")).to_contain_text("Übergeben an Familienbüro")
    # The citizen's page leaves the call and waits again, now for the Familienbüro.
    expect(second.locator("#wait-office")).to_have_text("Familienbüro", timeout=15000)
    expect(second.locator("#wait-position")).to_have_text("1")
    assert second.evaluate("window.__sameDocument") is None  # the waiting page was loaded afresh
    assert not errors, errors
    second.context.close()

    assert not errors, errors
    for page in (first, advisor):
        page.context.close()


def test_console_shows_transcript_as_text(browser, waiting_server):
    """A chatbot's transcript (POST /api/queue) is on the console folded, as text, never as HTML."""
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    base = waiting_server["base_url"]
    transcript = [
        {"role": "bot", "text": "Worum geht es?"},
        {"role": "citizen", "text": "<img src=x onerror=alert(1)> Elterngeld"},
    ]
    body = json.dumps({"office": "buergertelefon", "language": "de", "topic": "Elterngeld",
                       "transcript": transcript}).encode()  # fmt: skip
    request = urllib.request.Request(
        base + "/api/queue", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201

    errors: list[str] = []
    advisor = _page(browser, DESKTOP, errors, "advisor")
    sign_in(advisor, base, ADVISOR[0], ADVISOR[1])
    entry = advisor.locator("#queue-list .queue-entry", has_text="Elterngeld")
    expect(entry).to_have_count(1)
    summary = entry.get_by_text("Chatbot-Verlauf (2)")
    log = entry.locator(".transcript-log")
    expect(log).to_be_hidden()
    summary.focus()
    advisor.keyboard.press("Enter")  # keyboard opens it
    expect(log).to_be_visible()
    expect(log.locator("li").nth(0)).to_have_text("Chatbot: Worum geht es?")
    expect(log.locator("li").nth(1)).to_have_text("Bürger/in: <img src=x onerror=alert(1)> Elterngeld")
    assert advisor.locator("#queue-list img").count() == 0
    assert not errors, errors
    advisor.context.close()
