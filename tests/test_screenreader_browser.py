"""What a screen reader gets (BITV 2.0 / WCAG 2.1 AA 4.1.2 name, role, value; 4.1.3 status messages; 2.4.3
focus order), in German, Turkish and Arabic (right to left), in Chromium through the real server.

A live region is what a screen reader reads out by itself, so each announcement is asserted as the text of a
live region (role=status / role=log / role=alert) turning into the catalog's text in the page's language:
the waiting room's position, and in the call the other person's joining, leaving, microphone and camera,
their screen share, an incoming chat message (on a phone, where the chat and its log are folded away), and a
lost connection. Names come from the accessibility tree (Playwright's get_by_role with the catalog's name,
and the ARIA snapshot of the video tiles). The focus moves with the screen: waiting → call onto the call's
heading, call → end screen onto the end screen's heading.

The citizen in the call talks to the server through a TcpProxy, whose drop() is the lost connection. The
advisor's page is German and driven with the mouse; only the citizen's pages are under test here.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from babel import Locale

from sprechstunde.strings import catalog
from tests.browser_support import DESKTOP, MOBILE, TcpProxy, add_staff, running_server, sign_in
from tests.test_waiting_browser import OFFICES

pytestmark = pytest.mark.browser

ADVISOR = ("vorlese-beraterin", "ein-langes-test-passwort-6")
ADVISOR_NAME = "Herr Schmidt"
LOCALES = {"de": "de-DE", "tr": "tr-TR", "ar": "ar-SA"}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def text(lang: str, key: str, **values: object) -> str:
    """The catalog's text as the page's tr() (static/strings.js) fills it in: the plural variant chosen by the
    text's first number ('<key>#<CLDR category>'), then the placeholders."""
    strings = catalog().strings(lang)
    chosen = strings[key]
    first = PLACEHOLDER.search(chosen)
    if first and isinstance(values.get(first.group(1)), int):
        category = Locale.parse(lang).plural_form(values[first.group(1)])
        chosen = strings.get(f"{key}#{category}", chosen)
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), chosen)


@pytest.fixture(scope="module")
def reader_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("screenreader")
    add_staff(data_dir, *ADVISOR, office="buergertelefon")
    with running_server(data_dir, "--offices", str(OFFICES)) as server:
        yield server


def _wait_out_closed_minute() -> None:
    """The test office closes 23:59–00:00 (Berlin): never start across that minute."""
    now = datetime.now(ZoneInfo("Europe/Berlin"))
    if now.hour == 23 and now.minute >= 58:
        time.sleep((60 - now.minute) * 60 - now.second + 2)


def _queue(base: str, topic: str) -> str:
    """A place in the queue (as the start page asks for it); the waiting room's path."""
    body = json.dumps({"office": "buergertelefon", "language": "de", "topic": topic}).encode()
    request = urllib.request.Request(
        base + "/api/queue", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        waiting_url = json.loads(response.read())["waiting_url"]
    return "/wait/" + waiting_url.split("/wait/", 1)[1]


def _announced(page, live: str, expected, timeout: float = 15.0) -> None:
    """The live region `live` reads `expected` (a text, or a function of the page's figures → the texts
    that fit): figures and announcement are read in one go, so they belong to the same update."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = page.evaluate(
            """(live) => ({
              live: document.querySelector(live).textContent,
              estimate: (document.getElementById('wait-estimate') || {}).textContent,
              position: Number((document.getElementById('wait-position') || {}).textContent),
            })""",
            live,
        )
        wanted = expected(seen) if callable(expected) else {expected}
        if seen["live"] in wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"{live} reads {seen['live']!r}, not {wanted}")


def _is_live(page, selector: str, role: str) -> None:
    node = page.locator(selector)
    assert node.get_attribute("role") == role, selector
    if role == "status":
        assert node.get_attribute("aria-live") in (None, "polite"), selector  # role=status is polite


def _in_call(page) -> None:
    page.wait_for_function(
        "() => window.sprechstunde && window.sprechstunde.state === 'in-call'", timeout=20000
    )


@pytest.mark.parametrize("lang", ["de", "tr", "ar"])
def test_announcements_names_and_focus(browser, reader_server, lang):
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    base = reader_server["base_url"]
    errors: list[str] = []
    proxy = TcpProxy(reader_server["port"])
    pages = []

    def open_page(viewport: dict, locale: str, name: str):
        page = browser.new_context(locale=locale, viewport=viewport).new_page()
        page.on("pageerror", lambda error: errors.append(f"{name}: {error}"))
        pages.append(page)
        return page

    try:
        first_path = _queue(base, "Wohngeld")
        second_path = _queue(base, "Kindergeld")
        citizen = open_page(MOBILE, LOCALES[lang], "citizen")
        citizen.goto(f"http://127.0.0.1:{proxy.port}{first_path}?lang={lang}")
        other = open_page(MOBILE, LOCALES[lang], "second citizen")
        other.goto(f"{base}{second_path}?lang={lang}")
        assert citizen.locator("html").get_attribute("dir") == ("rtl" if lang == "ar" else "ltr")
        citizen.locator("#name-input").fill("Frau Yılmaz")

        # the waiting room says the place in line, and says it again when it changes
        _is_live(other, "#wait-live", "status")
        expect(other.locator("#wait-position")).not_to_have_text("1")
        before = int(other.locator("#wait-position").inner_text())
        _announced(
            other,
            "#wait-live",
            lambda s: {text(lang, "wait.announce", position=before, estimate=s["estimate"])},
        )

        advisor = open_page(DESKTOP, "de-DE", "advisor")
        advisor.goto(base + "/login")
        advisor.evaluate(f"sessionStorage.setItem('sprechstunde.name', {json.dumps(ADVISOR_NAME)})")
        sign_in(advisor, base, *ADVISOR)
        advisor.get_by_role("button", name="Nächste Person").click()
        advisor.wait_for_url("**/join/**")
        _in_call(citizen)
        _in_call(advisor)

        # waiting → call: the focus is on the call's heading, in the page's language
        expect(citizen.get_by_role("heading", name=text(lang, "call.heading"), exact=True)).to_be_focused()
        expect(other.locator("#wait-position")).to_have_text(str(before - 1))
        _announced(
            other,
            "#wait-live",
            lambda s: (
                {
                    text(lang, "wait.announce.next", estimate=s["estimate"]),
                    text(lang, "wait.announce.now"),
                }
                if before == 2
                else {text(lang, "wait.announce", position=before - 1, estimate=s["estimate"])}
            ),
        )

        # the controls and the other person's tile have names
        controls = citizen.get_by_role("group", name=text(lang, "call.controls"))
        for key in (
            "call.mic.mute",
            "call.camera.off",
            "call.devices.toggle",
            "call.chat.toggle",
            "call.leave",
        ):
            expect(controls.get_by_role("button", name=text(lang, key), exact=True)).to_be_visible()
        tiles = citizen.get_by_role("list", name=text(lang, "call.participants"))
        expect(tiles.get_by_role("listitem")).to_have_count(1)
        expect(tiles.get_by_label(text(lang, "call.participant.video", name=ADVISOR_NAME))).to_be_attached()
        pin = tiles.get_by_role("button", name=text(lang, "call.tile.pin", name=ADVISOR_NAME))
        expect(pin).to_be_visible()
        snapshot = tiles.aria_snapshot()
        assert ADVISOR_NAME in snapshot, snapshot
        assert text(lang, "call.tile.pin", name=ADVISOR_NAME) in snapshot, snapshot
        expect(citizen.get_by_label(text(lang, "call.preview.label")).last).to_be_attached()  # own picture

        # what the advisor switches is said on the citizen's page
        status = citizen.locator("#status")
        _is_live(citizen, "#status", "status")
        advisor.locator("#mic-button").click()
        expect(status).to_have_text(text(lang, "call.status.remote_mic_off", name=ADVISOR_NAME))
        expect(tiles.get_by_role("img", name=text(lang, "call.remote.muted"))).to_be_visible()
        advisor.locator("#mic-button").click()
        expect(status).to_have_text(text(lang, "call.status.remote_mic_on", name=ADVISOR_NAME))
        advisor.locator("#camera-button").click()
        expect(status).to_have_text(text(lang, "call.status.remote_camera_off", name=ADVISOR_NAME))
        advisor.locator("#camera-button").click()
        expect(status).to_have_text(text(lang, "call.status.remote_camera_on", name=ADVISOR_NAME))

        # a chat message: in the log (role=log); on the phone the chat is folded away, the status line says it
        advisor.locator("#chat-input").fill("Merhaba! مرحبا")
        advisor.locator("#chat-input").press("Enter")
        expect(citizen.locator("[role=log]")).to_contain_text("Merhaba! مرحبا")
        expect(status).to_have_text(
            text(lang, "call.chat.announce", name=ADVISOR_NAME, text="Merhaba! مرحبا")
        )
        expect(citizen.get_by_role("button", name=text(lang, "call.chat.unread", count=1))).to_be_visible()

        # the advisor shares the screen: said, and the shown screen has a name
        advisor.locator("#screen-button").click()
        expect(status).to_have_text(text(lang, "call.screen.started", name=ADVISOR_NAME))
        shown = citizen.get_by_role("figure", name=text(lang, "call.screen.of", name=ADVISOR_NAME))
        expect(shown).to_be_visible(timeout=15000)
        advisor.locator("#screen-button").click()
        expect(status).to_have_text(text(lang, "call.screen.stopped", name=ADVISOR_NAME))

        # the connection is lost, and back
        proxy.drop()
        expect(status).to_have_text(text(lang, "call.status.reconnecting"))
        expect(status).to_have_text(text(lang, "call.status.reconnected"), timeout=20000)

        # the advisor leaves (a notice says what happens now) and comes back
        advisor.locator("#leave-button").click()
        advisor.locator("#leave-confirm").click()
        expect(status).to_have_text(text(lang, "call.status.left", name=ADVISOR_NAME))
        expect(
            citizen.get_by_role("alert").filter(has_text=text(lang, "call.end.advisor_left.leave"))
        ).to_be_visible()
        advisor.locator("#rejoin-link").click()
        advisor.locator("#join-button").click()
        expect(status).to_have_text(text(lang, "call.status.joined", name=ADVISOR_NAME))
        expect(citizen.locator("#advisor-gone")).to_be_hidden()

        # the advisor closes the consultation: the end screen's heading has the focus
        advisor.locator("#outcome-submit").click()
        heading = citizen.get_by_role("heading", name=text(lang, "call.end.heading"), exact=True)
        expect(heading).to_be_focused(timeout=15000)
        expect(citizen.locator("#incall")).to_be_hidden()
        other.locator("#wait-leave").click()  # the next language's run starts with an empty line
        expect(other.locator("#wait-gone")).to_be_visible()
        assert not errors, errors
    finally:
        for page in pages:
            page.context.close()
        proxy.close()
