"""Real-browser tests of the city pages (web/city) through the real server process with the example city:
the footer's link to the accessibility statement, the feedback form sent without JavaScript, and the
Leichte Sprache page on a 360 px phone (tests/browser_support.py: Debian chromium via Playwright).

SPRECHSTUNDE_SCREENSHOTS=DIR saves r3-statement.png and r3-leichte-sprache-360.png there."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.a11y_support import AXE, axe_violations, describe
from tests.browser_support import DESKTOP

pytestmark = pytest.mark.browser

PAGES = ("/barrierefreiheit", "/leichte-sprache", "/gebaerdensprache", "/datenschutz", "/impressum")
PHONE = {"width": 360, "height": 740}
# how far the page is wider than the window (> 0: sideways scrolling)
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
GERMAN_ONLY_AR = "معلومات المدينة في هذه الصفحة متوفرة باللغة الألمانية فقط."


def _shot(page, name: str) -> None:
    directory = os.environ.get("SPRECHSTUNDE_SCREENSHOTS")
    if directory:
        page.screenshot(path=str(Path(directory) / f"r3-{name}.png"), full_page=True)


def test_footer_leads_to_the_statement_and_feedback_works_without_javascript(browser, server):
    from playwright.sync_api import expect

    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False, locale="de-DE")
    page = context.new_page()
    page.goto(server["base_url"] + "/")
    footer = page.get_by_role("navigation", name="Rechtliches und Barrierefreiheit")
    expect(footer).to_be_visible()
    footer.get_by_role("link", name="Barrierefreiheit").click()
    page.wait_for_url("**/barrierefreiheit")
    expect(page.get_by_role("heading", level=1, name="Erklärung zur Barrierefreiheit")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("teilweise vereinbar")
    expect(page.get_by_role("heading", name="Schlichtungsverfahren")).to_be_visible()
    _shot(page, "statement")

    page.get_by_label("Welche Barriere ist Ihnen aufgefallen?").fill(
        "Im Kalender kann ich mit der Tastatur keinen Tag wählen."
    )
    page.get_by_label("Auf welcher Seite?").fill("Termin buchen, Schritt 4")
    page.get_by_label("E-Mail-Adresse oder Telefonnummer für die Antwort").fill("anna@example.org")
    page.get_by_role("button", name="Nachricht senden").click()
    sent = page.get_by_role("status")
    expect(sent).to_contain_text("Danke! Wir haben Ihre Nachricht erhalten. Ihr Aktenzeichen:")
    expect(page.locator("#feedback-reference")).to_have_text(re.compile(r"^SP-\d{4}-\d{6}$"))
    expect(page.get_by_label("Welche Barriere ist Ihnen aufgefallen?")).to_have_count(0)
    _shot(page, "statement-sent")
    context.close()


def test_leichte_sprache_on_a_360_px_phone(browser, server):
    from playwright.sync_api import expect

    context = browser.new_context(viewport=PHONE, locale="de-DE")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server["base_url"] + "/leichte-sprache")
    expect(page.get_by_role("heading", level=1, name="Leichte Sprache")).to_be_visible()
    expect(page.get_by_role("heading", name="Was ist Sprech·stunde?")).to_be_visible()
    expect(page.get_by_role("heading", name="So geht die Video·beratung")).to_be_visible()
    assert page.locator("article").get_attribute("lang") is None  # German page: German text, no marking
    # nothing wider than the phone: no sideways scrolling (WCAG 1.4.10 reflow)
    assert page.evaluate(OVERFLOW) <= 0
    # Leichte Sprache: large type and generous line spacing
    size, height = page.evaluate(
        """() => { const style = getComputedStyle(document.querySelector('.easy-text p'));
                   return [parseFloat(style.fontSize), parseFloat(style.lineHeight)]; }"""
    )
    assert size >= 18 and height >= 1.7 * size
    footer = page.get_by_role("navigation", name="Rechtliches und Barrierefreiheit")
    footer.scroll_into_view_if_needed()
    expect(footer.get_by_role("link", name="Impressum")).to_be_visible()
    _shot(page, "leichte-sprache-360")
    assert errors == []
    context.close()


def test_the_city_pages_in_arabic_read_right_to_left_with_german_text_left_to_right(browser, server):
    from playwright.sync_api import expect

    context = browser.new_context(viewport=PHONE, locale="ar")
    page = context.new_page()
    page.goto(server["base_url"] + "/impressum?lang=ar")
    expect(page.get_by_role("heading", level=1, name="بيانات الناشر")).to_be_visible()
    expect(page.locator("#german-only")).to_have_text(GERMAN_ONLY_AR)
    directions = page.evaluate(
        """() => [getComputedStyle(document.body).direction,
                  getComputedStyle(document.querySelector('.city-text')).direction]"""
    )
    assert directions == ["rtl", "ltr"]
    assert page.evaluate(OVERFLOW) <= 0
    _shot(page, "imprint-ar-360")
    context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "360"])
def test_no_axe_violations_on_the_city_pages(browser, server, viewport):
    """axe-core (WCAG 2.1 A/AA) on each city page in German, Turkish and Arabic, also after a refused
    feedback form (its error message and invalid fields)."""
    if not AXE.exists():
        pytest.skip("axe-core is not installed (tests/a11y: npm ci)")
    context = browser.new_context(viewport=viewport, java_script_enabled=True)
    page = context.new_page()
    found = {}
    for lang in ("de", "tr", "ar"):
        for path in PAGES:
            page.goto(f"{server['base_url']}{path}?lang={lang}")
            found[f"{path}?lang={lang}"] = axe_violations(page)
        page.goto(f"{server['base_url']}/barrierefreiheit?lang={lang}")
        page.locator("#feedback-message").fill("x")
        page.evaluate("() => document.querySelector('#feedback form').noValidate = true")
        page.locator("#feedback-submit").click()
        page.locator("#feedback-error").wait_for()
        found[f"refused form ?lang={lang}"] = axe_violations(page)
    context.close()
    problems = {where: describe(v) for where, v in found.items() if v}
    assert not problems, "\n".join(f"{where}:\n{text}" for where, text in problems.items())
