"""Languages as a person meets them in Chromium: the switcher works without JavaScript and is remembered,
Arabic pages run right to left with the layout mirrored, the start page offers the page's language for the
conversation, and no citizen page in any language scrolls sideways on a 360 px phone."""

from __future__ import annotations

import pytest

from tests.browser_support import DESKTOP, MOBILE, create_room

pytestmark = pytest.mark.browser

LANGUAGES = ("de", "en", "fr", "it", "pl", "tr", "ku", "ar")


def test_switcher_without_javascript_is_remembered(browser, server):
    context = browser.new_context(viewport=MOBILE, java_script_enabled=False, locale="de-DE")
    page = context.new_page()
    page.goto(server["base_url"] + "/termin")
    assert page.locator("html").get_attribute("lang") == "de"
    page.get_by_role("navigation", name="Sprache").get_by_role("link", name="Türkçe").click()
    assert page.locator("html").get_attribute("lang") == "tr"
    assert page.get_by_role("heading", level=1).inner_text().strip() == "Randevu al"
    page.goto(server["base_url"] + "/")  # another page, no ?lang=: the choice holds
    assert page.locator("html").get_attribute("lang") == "tr"
    current = page.get_by_role("navigation", name="Dil").locator("[aria-current]")
    assert current.inner_text() == "Türkçe"
    context.close()


def test_arabic_runs_right_to_left_and_mirrors_the_layout(browser, server):
    page = browser.new_page(viewport=DESKTOP)
    page.goto(server["base_url"] + "/?lang=ar")
    assert page.locator("html").get_attribute("dir") == "rtl"
    brand = page.locator(".site-header .brand").bounding_box()
    switcher = page.locator(".site-header .languages").bounding_box()
    assert brand["x"] > DESKTOP["width"] / 2 > switcher["x"]  # the brand on the right, languages on the left
    # the start page's language of the conversation follows the page where an office offers it
    page.goto(server["base_url"] + "/?lang=en")
    page.wait_for_function("document.getElementById('start-language').options.length > 0")
    assert page.locator("#start-language").input_value() == "en"
    page.close()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_citizen_pages_fit_a_phone_in_every_language(browser, server, lang):
    links = create_room(server)
    page = browser.new_page(viewport=MOBILE)
    urls = [
        f"{server['base_url']}/?lang={lang}",
        f"{server['base_url']}/termin?lang={lang}",
        links["citizen_url"] + f"?lang={lang}",
    ]
    for url in urls:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == lang
        wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert wide <= 0, (url, wide)
    page.close()
