"""Keyboard only (BITV 2.0 / WCAG 2.1 AA 2.1.1 keyboard, 2.4.3 focus order, 2.4.7 focus visible), in Chromium:
the citizen's and the advisor's actions under test are Tab, Shift+Tab, Enter, Space, Escape and the arrow
keys, never a click — the advisor may use the mouse only where a citizen's path is tested.

- the start page → the waiting room → (the advisor takes "Nächste Person" and closes the consultation, both
  by keyboard) → the call → the "Verlassen" dialog (Escape and "Im Gespräch bleiben" return the focus to
  "Verlassen") → the end screen with its survey; a call joined from a link, left through the dialog;
- the booking flow: office, service, a day and a time in the calendar, the form (with an error), the
  confirmation; then the manage link: move the appointment and cancel it;
- at every Tab stop on the way the focused element shows a focus indicator: an outline (or a shadow) that
  it does not have unfocused, at least 2 px wide (`KeyboardUser`).

Servers: tests/waiting_offices.toml (open around the clock) for the queue, tests/booking_*.toml for booking.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.browser_support import DESKTOP, MOBILE, ROOT, add_staff, create_room, running_server
from tests.test_waiting_browser import OFFICES, _in_call, _wait_out_closed_minute

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
ADVISOR = ("tastatur-berater", "ein-langes-test-passwort-5")
EVERY_DAY = [f"--day={d}=00:00-23:59" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]

# The focused element (or, for a visually hidden radio, its label): does it look different focused?
# Read focused, then blurred, then focused again (a script's focus() after keyboard use keeps
# :focus-visible in Chromium, which `visible_again` confirms).
FOCUS_LOOK = """
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return { ok: false, what: "nothing (body)" };
  let target = el;
  const box = el.getBoundingClientRect();
  if ((box.width <= 2 || box.height <= 2) && el.labels && el.labels.length) target = el.labels[0];
  const look = () => {
    const s = getComputedStyle(target);
    const width = parseFloat(s.outlineWidth) || 0;
    const clear = /rgba\\(\\d+, \\d+, \\d+, 0\\)|transparent/.test(s.outlineColor);
    return {
      outline: s.outlineStyle === "none" || width === 0 || clear
        ? "" : `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}`,
      width,
      shadow: s.boxShadow === "none" ? "" : s.boxShadow,
    };
  };
  const on = look();
  el.blur();
  const off = look();
  el.focus({ preventScroll: true });
  const rect = target.getBoundingClientRect();
  const classes = typeof el.className === "string" && el.className.trim()
    ? "." + el.className.trim().split(/\\s+/).join(".") : "";
  const label = (el.getAttribute("aria-label") || el.textContent || el.value || "").trim().slice(0, 40);
  const what = `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${classes} "${label}"`;
  const changed = (on.outline && on.width >= 2 && on.outline !== off.outline)
    || (on.shadow && on.shadow !== off.shadow);
  return {
    ok: !!changed && rect.width > 0 && rect.height > 0 && document.activeElement === el,
    visible_again: el.matches(":focus-visible"),
    what, on, off,
  };
}
"""


class KeyboardUser:
    """Drives one page with the keyboard and checks the focus indicator at every Tab stop it passes."""

    def __init__(self, page, name: str) -> None:
        self.page = page
        self.name = name
        self.problems: list[str] = []
        self.stops = 0
        self.last = "(start)"

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)

    def matches(self, selector: str) -> bool:
        return self.page.evaluate(
            "(s) => !!document.activeElement && document.activeElement.matches(s)", selector
        )

    def active(self) -> str:
        return self.page.evaluate(
            "() => { const e = document.activeElement; return e ? (e.id || e.tagName.toLowerCase()) : ''; }"
        )

    def check_focus(self, seeking: str = "") -> None:
        self.stops += 1
        look = self.page.evaluate(FOCUS_LOOK)
        if not look["ok"]:
            where = self.page.url.split("?")[0][-40:]
            self.problems.append(
                f"{self.name} …{where} (tabbing to {seeking or '-'}) after {self.last}: no visible focus on "
                f"{look['what']}: {look}"
            )
        self.last = look["what"]

    def tab_to(self, selector: str, *, back: bool = False, limit: int = 150) -> None:
        """Tab (or Shift+Tab) until the focus is on `selector`, checking the focus at every stop."""
        passed = []
        for _ in range(limit):
            self.press("Shift+Tab" if back else "Tab")
            self.check_focus(selector)
            if self.matches(selector):
                return
            passed.append(self.active())
        raise AssertionError(f"{self.name}: {selector} not reached by keyboard; passed {passed[-20:]}")

    def next_stop_is(self, selector: str) -> None:
        """The very next Tab stop is `selector` (focus order, WCAG 2.4.3)."""
        self.press("Tab")
        self.check_focus()
        assert self.matches(selector), (
            f"{self.name}: after Tab the focus is on {self.active()}, not {selector}"
        )

    def focus_is(self, selector: str, timeout: float = 10000) -> None:
        """The page moved the focus to `selector` by itself (a new screen, a dialog)."""
        self.page.wait_for_function(
            "(s) => !!document.activeElement && document.activeElement.matches(s)",
            arg=selector,
            timeout=timeout,
        )

    def done(self) -> None:
        assert self.stops > 0
        assert not self.problems, "\n".join(self.problems)


def _cli(*args: str, data_dir: Path) -> None:
    command = [sys.executable, "-m", "sprechstunde", *args, "--data-dir", str(data_dir)]
    subprocess.run(command, cwd=ROOT, check=True, timeout=30, capture_output=True)


@pytest.fixture(scope="module")
def queue_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("keyboard-queue")
    add_staff(data_dir, *ADVISOR, office="buergertelefon")
    with running_server(data_dir, "--offices", str(OFFICES)) as server:
        yield server


@pytest.fixture(scope="module")
def booking_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("keyboard-booking")
    add_staff(data_dir, *ADVISOR, office="vhs")
    _cli("availability", "set", ADVISOR[0], *EVERY_DAY, data_dir=data_dir)
    offices, services = HERE / "booking_offices.toml", HERE / "booking_services.toml"
    with running_server(data_dir, "--offices", str(offices), "--services", str(services)) as server:
        yield server


def _page(browser, viewport: dict, errors: list[str], name: str):
    page = browser.new_context(locale="de-DE", viewport=viewport).new_page()
    page.on("pageerror", lambda error: errors.append(f"{name}: {error}"))
    return page


def test_booking_by_keyboard(browser, booking_server):
    from playwright.sync_api import expect

    base = booking_server["base_url"]
    errors: list[str] = []
    page = _page(browser, MOBILE, errors, "citizen")
    citizen = KeyboardUser(page, "citizen")
    page.goto(base + "/termin")

    # the skip link first, then on to the office
    citizen.next_stop_is("a.skip")
    citizen.press("Enter")
    citizen.focus_is("main")
    citizen.tab_to("a[href^='/termin/vhs']")
    citizen.press("Enter")
    expect(page.get_by_role("heading", name="Worum geht es?")).to_be_visible()
    citizen.tab_to("a[href*='/termin/vhs/kurz']")
    citizen.press("Enter")
    expect(page.get_by_role("heading", name="Tag wählen")).to_be_visible()

    # the calendar: the first free day (today) by Tab, then its times
    citizen.tab_to("a.day.free")
    citizen.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Freie Uhrzeiten am"))).to_be_visible()
    citizen.focus_is("#slots")  # the times, not the top of the page
    citizen.next_stop_is(".slot-list a")
    citizen.press("Enter")
    expect(page.get_by_role("heading", name="Ihre Angaben")).to_be_visible()
    citizen.focus_is("#details")
    citizen.next_stop_is("#name")
    citizen.type("Erika Mustermann")
    citizen.tab_to("#booking-submit")
    citizen.press("Enter")
    # no consent: the error has the focus, the form is reached from it and keeps the name
    expect(page.get_by_role("alert")).to_contain_text("Datenschutzhinweise gelesen haben")
    citizen.focus_is("#booking-error")
    citizen.tab_to("#consent")
    expect(page.locator("#name")).to_have_value("Erika Mustermann")
    citizen.press("Space")
    expect(page.locator("#consent")).to_be_checked()
    citizen.tab_to("#booking-submit")
    citizen.press("Enter")
    expect(page.get_by_role("heading", name="Ihr Termin ist gebucht")).to_be_visible()
    citizen.tab_to("#ics-link")
    citizen.tab_to("#manage-url")

    # the manage link (from the mail or the confirmation): move the appointment, then cancel it
    page.goto(page.locator("#manage-url").input_value())
    citizen.tab_to("a[href*='/verschieben']")
    citizen.press("Enter")
    expect(page.get_by_role("heading", name="Neuen Termin wählen")).to_be_visible()
    citizen.tab_to("a.day.free")
    citizen.press("Enter")
    citizen.focus_is("#slots")
    citizen.tab_to(".slot-list a:not(.chosen)")
    citizen.press("Enter")
    citizen.focus_is("#details")
    citizen.next_stop_is("#details button[type=submit]")
    citizen.press("Enter")
    expect(page.get_by_role("heading", name="Ihr Termin wurde verschoben")).to_be_visible()
    citizen.tab_to(".booking-actions summary")
    citizen.press("Enter")
    citizen.next_stop_is("#cancel-submit")
    citizen.press("Space")
    expect(page.get_by_role("status")).to_contain_text("abgesagt")
    citizen.done()
    assert not errors, errors
    page.context.close()


def _queue(base: str, topic: str, transcript: list | None = None) -> None:
    """Someone else joins the queue (as the chatbot's hand-over does)."""
    body = {"office": "buergertelefon", "language": "de", "topic": topic, "transcript": transcript or []}
    request = urllib.request.Request(
        base + "/api/queue", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def _choose(user: KeyboardUser, select: str, value: str) -> None:
    """A closed <select> with the focus: the arrow keys change its value (no popup)."""
    for key in ("ArrowDown",) * 8 + ("ArrowUp",) * 16:
        if user.page.locator(select).input_value() == value:
            return
        user.press(key)
    assert user.page.locator(select).input_value() == value


def test_queue_call_and_end_screen_by_keyboard(browser, queue_server):
    """Citizen: start page → waiting room → call → "Verlassen" dialog (cancelled) → end screen and survey.
    Advisor: sign in → "Nächste Person" → close the consultation with a ticket → leave through the dialog."""
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    base = queue_server["base_url"]
    errors: list[str] = []

    advisor_page = _page(browser, DESKTOP, errors, "advisor")
    advisor = KeyboardUser(advisor_page, "advisor")
    advisor_page.goto(base + "/login")
    advisor.tab_to("#username")
    advisor.type(ADVISOR[0])
    advisor.next_stop_is("#password")
    advisor.type(ADVISOR[1])
    advisor.press("Enter")
    advisor_page.wait_for_url("**/console")

    page = _page(browser, MOBILE, errors, "citizen")
    citizen = KeyboardUser(page, "citizen")
    page.goto(base + "/")
    expect(page.locator("#start-submit")).to_be_enabled()
    citizen.tab_to("#start-office")
    _choose(citizen, "#start-office", "buergertelefon")
    citizen.tab_to("#start-topic")
    citizen.type("Wohngeld")
    citizen.tab_to("#start-submit")
    citizen.press("Enter")
    page.wait_for_url("**/wait/**")
    expect(page.get_by_role("heading", name="Sie sind im Warteraum")).to_be_visible()
    citizen.tab_to("#name-input")
    citizen.type("Frau Yılmaz")
    citizen.tab_to("#note-input")
    citizen.type("Ich habe den Bescheid dabei.")
    citizen.next_stop_is("#note-send")
    citizen.press("Enter")
    expect(page.locator("#note-feedback")).to_have_text("Ihre Notiz wurde übermittelt.")
    citizen.focus_is("#note-send")  # the button was busy meanwhile; the focus stays where it was

    # the console redraws its list on every change: the focus stays on the control it was on
    _queue(base, "Kindergeld", transcript=[{"role": "bot", "text": "Worum geht es?"}])
    entries = advisor_page.locator("#queue-list .queue-entry")
    expect(entries).to_have_count(2)
    advisor.tab_to(".queue-entry summary")
    advisor.press("Enter")
    expect(entries.nth(1).locator(".transcript-log")).to_be_visible()
    _queue(base, "Elterngeld")
    expect(entries).to_have_count(3)
    advisor.focus_is(".queue-entry summary")
    assert (
        advisor_page.evaluate(
            "document.activeElement.closest('.queue-entry').querySelector('.queue-topic').textContent"
        )
        == "Kindergeld"
    )

    # the advisor takes the next person by keyboard and lands in the call
    advisor.tab_to("#queue-next", back=True)
    advisor.press("Enter")
    advisor_page.wait_for_url("**/join/**")
    for each in (page, advisor_page):
        _in_call(each)
    citizen.focus_is("#incall-heading")  # waiting room → call: the focus goes to the call
    advisor.focus_is("#incall-heading")

    # microphone off and on again, Space and Enter
    citizen.tab_to("#mic-button")
    citizen.press("Space")
    expect(page.locator("#mic-button")).to_contain_text("Mikrofon einschalten")
    expect(page.locator("#status")).to_have_text("Ihr Mikrofon ist aus.")
    citizen.press("Enter")
    expect(page.locator("#mic-button")).to_contain_text("Mikrofon ausschalten")
    # the chat behind its toggle on a phone: Enter opens it with the focus in the input, Enter sends
    citizen.tab_to("#chat-toggle")
    citizen.press("Enter")
    citizen.focus_is("#chat-input")
    citizen.type("Guten Tag!")
    citizen.press("Enter")
    expect(advisor_page.locator("#chat-log")).to_contain_text("Guten Tag!")

    # "Verlassen" asks; Escape and "Im Gespräch bleiben" keep the call and give the focus back
    citizen.tab_to("#leave-button", back=True)  # the controls come before the chat
    citizen.press("Enter")
    expect(page.locator("#leave-dialog")).to_have_attribute("open", "")
    citizen.focus_is("#leave-cancel")
    citizen.check_focus()
    citizen.press("Escape")
    expect(page.locator("#leave-dialog")).not_to_have_attribute("open", "")
    citizen.focus_is("#leave-button")
    citizen.press("Enter")
    citizen.focus_is("#leave-cancel")
    citizen.next_stop_is("#leave-confirm")
    citizen.tab_to("#leave-cancel", back=True)  # the focus stays inside the modal dialog
    citizen.press("Enter")
    citizen.focus_is("#leave-button")
    assert page.evaluate("window.sprechstunde.state") == "in-call"

    # the advisor closes the consultation with a ticket, by keyboard; the focus goes to what comes next
    advisor.tab_to("input[name=outcome]:checked")
    advisor.press("ArrowDown")
    expect(advisor_page.locator("input[name=outcome][value=ticket]")).to_be_checked()
    advisor.check_focus()
    advisor.tab_to("#outcome-notes")
    advisor.type("Bescheid fehlt")
    advisor.tab_to("#outcome-submit")
    advisor.press("Enter")
    expect(advisor_page.locator("#consultation-status")).to_contain_text(re.compile(r"SP-\d{4}-\d{6}"))
    advisor.focus_is("#next-state, #next-person")

    # the citizen's end screen: the focus on its heading; the survey by arrow keys
    expect(page.get_by_role("heading", name="Ihr Beratungsgespräch ist beendet")).to_be_visible(timeout=15000)
    citizen.focus_is("#ended-heading")
    expect(page.locator("#survey-form")).to_be_visible()
    citizen.tab_to("#survey-score-1")
    for _ in range(3):
        citizen.press("ArrowRight")
    expect(page.locator("#survey-score-4")).to_be_checked()
    expect(page.locator(".star.lit")).to_have_count(4)
    citizen.check_focus()  # the star's label shows the focus of its hidden radio
    citizen.tab_to("#survey-comment")
    citizen.type("Danke!")
    citizen.tab_to("#survey-send")
    citizen.press("Enter")
    expect(page.locator("#survey-thanks")).to_have_text("Vielen Dank für Ihre Bewertung!")
    citizen.focus_is("#survey-thanks")  # the form went away: its answer has the focus, not the page
    citizen.tab_to("#ended-queue")

    # the advisor leaves the call through the dialog: "Ja, verlassen"
    advisor.tab_to("#leave-button", back=True)
    advisor.press("Enter")
    advisor.focus_is("#leave-cancel")
    advisor.next_stop_is("#leave-confirm")
    advisor.press("Enter")
    expect(advisor_page.locator("#left")).to_be_visible()
    advisor.focus_is("#left-heading")
    citizen.done()
    advisor.done()
    assert not errors, errors
    for each in (page, advisor_page):
        each.context.close()


def test_call_link_prejoin_devices_and_leaving_by_keyboard(browser, booking_server):
    """A citizen's call link: the pre-join form, the devices panel (Escape closes it and gives the focus
    back), and leaving through the dialog's "Ja, verlassen" to the "left" screen."""
    from playwright.sync_api import expect

    links = create_room(booking_server)
    errors: list[str] = []
    page = _page(browser, DESKTOP, errors, "citizen")
    citizen = KeyboardUser(page, "citizen")
    page.goto(links["citizen_url"])
    page.wait_for_function("() => document.getElementById('preview-video').videoWidth > 0", timeout=10000)
    citizen.tab_to("#join-button")
    citizen.press("Enter")
    expect(page.locator("#name-error")).to_be_visible()  # no name: the focus goes to the field
    citizen.focus_is("#name-input")
    citizen.type("Frau Yılmaz")
    citizen.press("Enter")
    _in_call(page)
    citizen.focus_is("#incall-heading")

    citizen.tab_to("#devices-button")
    citizen.press("Enter")
    expect(page.locator("#devices-panel")).to_be_visible()
    expect(page.locator("#devices-button")).to_have_attribute("aria-expanded", "true")
    citizen.tab_to("#call-camera-select")
    citizen.press("Escape")
    expect(page.locator("#devices-panel")).to_be_hidden()
    citizen.focus_is("#devices-button")

    citizen.tab_to("#leave-button")
    citizen.press("Space")
    citizen.focus_is("#leave-cancel")
    citizen.next_stop_is("#leave-confirm")
    citizen.press("Enter")
    expect(page.get_by_role("heading", name="Sie haben die Beratung verlassen")).to_be_visible()
    citizen.focus_is("#left-heading")
    citizen.next_stop_is("#rejoin-link")
    citizen.done()
    assert not errors, errors
    page.context.close()
