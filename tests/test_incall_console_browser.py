"""Real-browser tests of the advisor's console (issue 17, items 8 and 9), through the real server process
(Debian chromium via Playwright, fake camera and microphone; see tests/browser_support.py).

8. Someone new is waiting: the console's tab title counts the waiting people, a tone sounds unless the
   advisor turned it off (remembered across a reload), and a desktop notification appears where the
   browser allows them — not for the list right after loading, not again for someone already there.
9. "Nächste Person" enters the call at once (no second "Beitreten"); at 1280×800 the consultation panel
   is beside the video, inside the window; after closing, "Nächste Person" right there takes the advisor
   into the next citizen's call, and says so when nobody waits.

Screenshots go to $SPRECHSTUNDE_SHOTS (default /tmp/shots) as h5-*.png.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.browser_support import DESKTOP, MOBILE, add_staff, running_server, sign_in, wait_for_decoded_video

pytestmark = pytest.mark.browser

OFFICES = Path(__file__).with_name("waiting_offices.toml")
PASSWORD = "ein-langes-test-passwort-7"
SHOTS = Path(os.environ.get("SPRECHSTUNDE_SHOTS", "/tmp/shots"))
CONSOLE_TITLE = "Beratungen – Sprechstunde"

# Installed before the console's scripts: records every desktop notification the page creates, while the
# real constructor still runs (the browser shows it; nothing is stubbed).
RECORD_NOTIFICATIONS = """
window.__notifications = [];
if (window.Notification) {
  window.Notification = new Proxy(window.Notification, {
    construct(target, args) {
      window.__notifications.push({ title: args[0], body: (args[1] || {}).body || "" });
      return new target(...args);
    },
  });
}
"""


@pytest.fixture(scope="module")
def desk_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("desk")
    add_staff(data_dir, "telefon", PASSWORD, office="buergertelefon")  # item 8
    add_staff(data_dir, "familie", PASSWORD, office="familienbuero")  # item 9
    with running_server(data_dir, "--offices", str(OFFICES)) as server:
        yield server


def _wait_out_closed_minute() -> None:
    """The test offices close 23:59–00:00 (Berlin): never start across that minute."""
    now = datetime.now(ZoneInfo("Europe/Berlin"))
    if now.hour == 23 and now.minute >= 57:
        time.sleep((60 - now.minute) * 60 - now.second + 2)


def _page(browser, viewport: dict, errors: list, name: str, **context_options):
    context = browser.new_context(locale="de-DE", viewport=viewport, **context_options)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{name}: {error}"))
    return page


def _sign_in(page, base: str, username: str) -> None:
    sign_in(page, base, username, PASSWORD)


def _wait_in_line(page, base: str, office: str, topic: str, name: str) -> None:
    """A citizen asks for a consultation on the start page and waits, their name already given."""
    from playwright.sync_api import expect

    page.goto(base + "/")
    expect(page.get_by_role("button", name="Jetzt Videoberatung starten")).to_be_enabled()
    page.get_by_label("Beratungsstelle").select_option(office)
    page.get_by_label("Worum geht es?").fill(topic)
    page.get_by_role("button", name="Jetzt Videoberatung starten").click()
    page.wait_for_url("**/wait/**")
    expect(page.get_by_role("heading", name="Sie sind im Warteraum")).to_be_visible()
    page.get_by_label("Ihr Name").fill(name)


def _in_call(page) -> None:
    page.wait_for_function(
        "() => window.sprechstunde && window.sprechstunde.state === 'in-call'", timeout=15000
    )


def _alerts(page) -> dict:
    return page.evaluate("() => ({ ...window.sprechstundeAlerts, shown: window.__notifications })")


def test_console_alerts_when_someone_new_waits(browser, desk_server):
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    base = desk_server["base_url"]
    errors: list[str] = []
    advisor = _page(browser, DESKTOP, errors, "console", permissions=["notifications"])
    advisor.context.add_init_script(RECORD_NOTIFICATIONS)
    _sign_in(advisor, base, "telefon")
    expect(advisor.locator("#queue-empty")).to_be_visible()
    expect(advisor).to_have_title(CONSOLE_TITLE)
    # notifications are allowed for this site: nothing to ask, the console says they are on
    expect(advisor.get_by_role("button", name="Desktop-Hinweise erlauben")).to_be_hidden()
    expect(advisor.get_by_text("Desktop-Hinweise sind an.")).to_be_visible()

    # The advisor turns the tone off; the choice survives a reload.
    sound = advisor.get_by_role("button", name="Ton bei neuen Wartenden")
    expect(sound).to_have_attribute("aria-pressed", "true")
    sound.click()
    expect(sound).to_have_attribute("aria-pressed", "false")
    advisor.reload()
    expect(advisor.locator("#queue-empty")).to_be_visible()
    expect(sound).to_have_attribute("aria-pressed", "false")

    # A first citizen arrives: "(1)" in the tab title and a notification, but no tone (turned off).
    first = _page(browser, MOBILE, errors, "first")
    _wait_in_line(first, base, "buergertelefon", "Wohngeld", "Frau Yılmaz")
    expect(advisor).to_have_title(f"(1) {CONSOLE_TITLE}")
    advisor.wait_for_function("() => window.__notifications.length === 1")
    alerts = _alerts(advisor)
    assert alerts["shown"] == [{"title": "Wartend: 1", "body": "Neu in der Warteschlange: Wohngeld"}]
    assert alerts["played"] == 0

    # Reloaded with her still waiting: the count stays in the title, but she is not announced again.
    advisor.reload()
    expect(advisor.locator("#queue-list .queue-entry")).to_have_count(1)
    expect(advisor).to_have_title(f"(1) {CONSOLE_TITLE}")
    time.sleep(0.5)
    assert _alerts(advisor)["shown"] == []

    # Tone on again (the click also lets the browser start audio); a second citizen: tone, title, notice.
    sound.click()
    expect(sound).to_have_attribute("aria-pressed", "true")
    second = _page(browser, MOBILE, errors, "second")
    _wait_in_line(second, base, "buergertelefon", "Meldebescheinigung", "Herr Nowak")
    expect(advisor).to_have_title(f"(2) {CONSOLE_TITLE}")
    advisor.wait_for_function("() => window.sprechstundeAlerts.played === 1")
    alerts = _alerts(advisor)
    assert alerts["audioState"] == "running", alerts  # the AudioContext really plays
    news = {"title": "Wartend: 2", "body": "Neu in der Warteschlange: Meldebescheinigung"}
    assert alerts["shown"] == [news]
    SHOTS.mkdir(parents=True, exist_ok=True)
    advisor.screenshot(path=str(SHOTS / "h5-console-alert.png"))

    # One leaves: the title counts down, and nobody new means no tone.
    second.get_by_role("button", name="Warteraum verlassen").click()
    expect(advisor).to_have_title(f"(1) {CONSOLE_TITLE}")
    assert _alerts(advisor)["played"] == 1
    assert not errors, errors
    for page in (advisor, first, second):
        page.context.close()


def test_next_person_goes_straight_into_the_call(browser, desk_server):
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    base = desk_server["base_url"]
    errors: list[str] = []
    advisor = _page(browser, DESKTOP, errors, "advisor")
    _sign_in(advisor, base, "familie")
    first = _page(browser, MOBILE, errors, "first")
    _wait_in_line(first, base, "familienbuero", "Elterngeld", "Frau Yılmaz")
    second = _page(browser, MOBILE, errors, "second")
    _wait_in_line(second, base, "familienbuero", "KiTa-Platz", "Herr Nowak")
    expect(advisor.locator("#queue-list .queue-entry")).to_have_count(2)

    # "Nächste Person" on the console: the advisor is in the call with her, without a "Beitreten" click.
    advisor.get_by_role("button", name="Nächste Person").click()
    advisor.wait_for_url(re.compile(r"/join/[^#]+#direct$"))
    for page in (advisor, first):
        _in_call(page)
        wait_for_decoded_video(page)
    expect(advisor.get_by_role("button", name="Beitreten", exact=True)).to_be_hidden()
    citizen_id = first.evaluate("window.sprechstunde.participantId")
    expect(advisor.locator(f'.tile[data-participant-id="{citizen_id}"]')).to_contain_text("Frau Yılmaz")

    # 1280×800: the consultation panel stands beside the video, entirely inside the window.
    panel = advisor.locator("#consultation")
    expect(panel.get_by_role("heading", name="Beratung: Elterngeld")).to_be_visible()
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= DESKTOP["width"] and box["y"] + box["height"] <= DESKTOP["height"], box
    stage = advisor.locator(".stage").bounding_box()
    assert stage["x"] + stage["width"] <= box["x"], (stage, box)  # beside the video, not over it
    for control in (
        panel.get_by_label("Erledigt – Anliegen geklärt"),
        panel.get_by_role("button", name="Beratung abschließen"),
        panel.get_by_role("button", name="Gast-Link erzeugen"),
        panel.get_by_text("An eine andere Stelle übergeben"),
    ):
        expect(control).to_be_in_viewport(ratio=1)
    SHOTS.mkdir(parents=True, exist_ok=True)
    advisor.screenshot(path=str(SHOTS / "h5-advisor-1280x800.png"))

    # Closing with an outcome: "Nächste Person" right there, with who is waiting.
    panel.get_by_role("button", name="Beratung abschließen").click()
    expect(panel.locator("#consultation-status")).to_have_text("Abgeschlossen: erledigt.")
    next_button = panel.get_by_role("button", name="Nächste Person")
    expect(next_button).to_be_enabled()
    expect(next_button).to_be_in_viewport(ratio=1)
    expect(next_button).to_be_focused()
    expect(panel.locator("#next-state")).to_have_text("Wartend: 1")
    expect(panel.get_by_role("link", name="Zurück zur Konsole").first).to_be_visible()
    advisor.screenshot(path=str(SHOTS / "h5-advisor-closed.png"))

    # ... which takes the advisor straight into the second citizen's call.
    first_url = advisor.url
    next_button.click()
    advisor.wait_for_url(lambda url: url != first_url and url.endswith("#direct"))
    for page in (advisor, second):
        _in_call(page)
        wait_for_decoded_video(page)
    citizen_id = second.evaluate("window.sprechstunde.participantId")
    expect(advisor.locator(f'.tile[data-participant-id="{citizen_id}"]')).to_contain_text("Herr Nowak")
    expect(panel.get_by_role("heading", name="Beratung: KiTa-Platz")).to_be_visible()

    # The last one closed: nobody waits, and the page says so.
    advisor.get_by_label("Nicht erschienen").check()
    advisor.get_by_role("button", name="Beratung abschließen").click()
    expect(advisor.locator("#next-state")).to_have_text("Gerade wartet niemand, den Sie beraten können.")
    expect(advisor.get_by_role("button", name="Nächste Person")).to_be_disabled()

    # Only the advisor skips the pre-join form: a citizen's link keeps it, whatever its fragment says.
    advisor.goto(base + "/console")
    advisor.get_by_role("button", name="Neuen Beratungsraum anlegen").click()
    citizen_url = advisor.get_by_label("Link für die Bürgerin / den Bürger").input_value()
    third = _page(browser, MOBILE, errors, "third")
    third.goto(base + urlsplit(citizen_url).path + "#direct")
    third.wait_for_function("() => document.getElementById('preview-video').videoWidth > 0", timeout=10000)
    time.sleep(1)
    expect(third.get_by_role("button", name="Beitreten", exact=True)).to_be_visible()
    assert third.evaluate("window.sprechstunde.state") == "prejoin"
    assert not errors, errors
    for page in (advisor, first, second, third):
        page.context.close()
