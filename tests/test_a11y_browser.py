"""BITV 2.0 (WCAG 2.1 A/AA via EN 301 549), checked with axe-core on the pages as people reach them: every
citizen page in German, Turkish and Arabic (right to left), on a desktop and a 360 px phone — start page
with a chatbot answer, booking flow to the confirmation and the manage page, waiting room, pre-join, the
call with its chat and leave dialog, error pages — and the staff pages in German and English.

Pages are walked with language-independent selectors, so each language sees the same steps.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.a11y_support import axe_violations, describe
from tests.browser_support import DESKTOP, MOBILE, ROOT, add_staff, create_room, running_server, sign_in

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
ADVISOR = ("a11y-beraterin", "ein-langes-test-passwort-9")
LEAD = ("a11y-leitung", "ein-langes-test-passwort-9")
EVERY_DAY = [f"--day={d}=00:00-23:59" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]
VIEWPORTS = {"desktop": DESKTOP, "phone": MOBILE}


@pytest.fixture(scope="module")
def a11y_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("a11y")
    add_staff(data_dir, *ADVISOR, office="vhs")
    add_staff(data_dir, *LEAD, office="vhs", role="lead")
    command = [sys.executable, "-m", "sprechstunde", "availability", "set", ADVISOR[0], *EVERY_DAY]
    subprocess.run(
        [*command, "--data-dir", str(data_dir)], cwd=ROOT, check=True, timeout=30, capture_output=True
    )
    offices, services = HERE / "booking_offices.toml", HERE / "booking_services.toml"
    with running_server(data_dir, "--offices", str(offices), "--services", str(services)) as server:
        yield server


def _clean(page, where: str, problems: list[str]) -> None:
    page.wait_for_load_state("networkidle")
    found = axe_violations(page)
    if found:
        problems.append(f"{where} ({page.url}):\n{describe(found)}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("lang", ["de", "tr", "ar"])
def test_citizen_pages_have_no_axe_findings(browser, a11y_server, lang, viewport):
    from playwright.sync_api import expect

    base = a11y_server["base_url"]
    problems: list[str] = []
    context = browser.new_context(viewport=VIEWPORTS[viewport])
    page = context.new_page()

    page.goto(f"{base}/?lang={lang}")
    expect(page.locator("#start-language option").first).to_be_attached()
    _clean(page, "start page", problems)
    page.locator("#chat-input").fill("Wie melde ich meinen Wohnsitz an?")
    page.locator("#chat-send").click()
    expect(page.locator("#chat-log .chat-bot").first).to_be_visible(timeout=10000)
    _clean(page, "start page with a chatbot answer", problems)

    # the booking flow: office, service, calendar, slots, form (with an error), confirmation, manage page
    page.goto(f"{base}/termin")
    _clean(page, "booking: offices", problems)
    page.locator("main a[href^='/termin/vhs']").first.click()
    _clean(page, "booking: services", problems)
    page.locator("main a[href*='/termin/vhs/kurz']").first.click()
    page.wait_for_load_state("networkidle")
    if page.locator("a.day.free").count() == 0:  # a channel step first
        page.locator("main a[href*='/video']").first.click()
    _clean(page, "booking: calendar", problems)
    page.locator("a.day.free").first.click()
    _clean(page, "booking: slots", problems)
    page.locator(".slot-list a").first.click()
    _clean(page, "booking: form", problems)
    page.locator("input[name=name]").fill("Erika Mustermann")
    page.locator("form button[type=submit]").last.click()
    _clean(page, "booking: form with an error", problems)
    page.locator("input[name=consent]").check()
    page.locator("form button[type=submit]").last.click()
    expect(page.locator("#booking-reference")).to_be_visible()
    _clean(page, "booking: confirmation", problems)
    manage = page.url.split("?")[0]  # the confirmation is the manage page, marked as new
    page.goto(manage)
    _clean(page, "booking: manage page", problems)
    page.goto(manage + "/verschieben")
    _clean(page, "booking: move page", problems)

    # error pages
    page.goto(f"{base}/gibt-es-nicht")
    _clean(page, "404 page", problems)
    page.goto(f"{base}/join/kaputt")
    _clean(page, "invalid link page", problems)
    page.goto(f"{base}/termin/datenschutz")
    _clean(page, "privacy notice", problems)
    context.close()
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("lang", ["de", "tr", "ar"])
def test_call_pages_have_no_axe_findings(browser, a11y_server, lang):
    """Pre-join, the call with two people (chat message, leave dialog), on a phone and a desktop."""
    from playwright.sync_api import expect

    links = create_room(a11y_server)
    problems: list[str] = []
    citizen = browser.new_context(viewport=MOBILE).new_page()
    advisor = browser.new_context(viewport=DESKTOP).new_page()
    citizen.goto(links["citizen_url"] + f"?lang={lang}")
    advisor.goto(links["advisor_url"] + f"?lang={lang}")
    expect(citizen.locator("#network-check, .network-check").first).to_be_visible()
    _clean(citizen, "pre-join (phone)", problems)
    _clean(advisor, "pre-join (desktop)", problems)
    citizen.locator("#name-input").fill("Frau Yılmaz")
    citizen.locator("#join-button").click()
    advisor.locator("#join-button").click()
    for page in (citizen, advisor):
        page.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=15000)
    advisor.locator("#chat-input").fill("Guten Tag!")
    advisor.locator("#chat-send").click()
    expect(advisor.locator("#chat-log")).to_contain_text("Guten Tag!")
    _clean(advisor, "call (desktop)", problems)
    _clean(citizen, "call (phone)", problems)
    citizen.locator("#leave-button").click()
    expect(citizen.locator("dialog[open]")).to_be_visible()
    _clean(citizen, "leave dialog (phone)", problems)
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("lang", ["de", "en"])
def test_staff_pages_have_no_axe_findings(browser, a11y_server, lang, viewport):
    base = a11y_server["base_url"]
    problems: list[str] = []
    page = browser.new_context(viewport=VIEWPORTS[viewport]).new_page()
    page.goto(f"{base}/login?lang={lang}")
    _clean(page, "login", problems)
    page.goto(f"{base}/?lang=de")  # the login form's labels are German in the test helper
    sign_in(page, base, *LEAD)
    page.goto(f"{base}/console?lang={lang}")
    _clean(page, "console", problems)
    page.goto(f"{base}/statistics?lang={lang}")
    _clean(page, "statistics", problems)
    page.goto(f"{base}/console/appointments?lang={lang}")
    _clean(page, "appointments", problems)
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("lang", ["de", "ar"])
def test_reflow_at_320_px_and_200_percent_zoom_and_reduced_motion(browser, a11y_server, lang):
    """WCAG 1.4.10: no sideways scrolling at 320 CSS px, nor at 200 % zoom of a 1280 px window (640 CSS px);
    with prefers-reduced-motion the pages run no transitions."""
    base = a11y_server["base_url"]
    links = create_room(a11y_server)
    urls = [f"{base}/", f"{base}/termin", f"{base}/termin/vhs", f"{base}/login", links["citizen_url"]]
    wide: list[str] = []
    for viewport, scale in (({"width": 320, "height": 640}, 1), ({"width": 640, "height": 400}, 2)):
        context = browser.new_context(viewport=viewport, device_scale_factor=scale, reduced_motion="reduce")
        page = context.new_page()
        for url in urls:
            page.goto(f"{url}?lang={lang}")
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 0:
                wide.append(f"{url} at {viewport['width']} px: {overflow} px too wide")
            moving = page.evaluate(
                "[...document.querySelectorAll('button, a, .button')].filter((e) => "
                "parseFloat(getComputedStyle(e).transitionDuration) > 0).length"
            )
            assert moving == 0, f"{url}: {moving} elements still transition with reduced motion"
        context.close()
    assert not wide, "\n".join(wide)
