"""Real-browser test of the chat widget on the start page (Debian chromium via Playwright, the real server
process, the real CSP): ask, get an answer with what to bring, see markup in a message shown as text,
press "Mit einer Person sprechen" and land in the waiting room with the conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser_support import DESKTOP, running_server

pytestmark = pytest.mark.browser

OFFICES = Path(__file__).with_name("waiting_offices.toml")  # open around the clock


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("chat"), "--offices", str(OFFICES)) as server:
        yield server


def test_chat_widget_answers_and_hands_over_to_a_person(browser, chat_server):
    from playwright.sync_api import expect

    context = browser.new_context(locale="de-DE", viewport=DESKTOP)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(chat_server["base_url"] + "/")

    log = page.get_by_role("log", name="Gesprächsverlauf")
    page.get_by_label("Ihre Frage an den Chatbot").fill("Mein Perso ist abgelaufen, was muss ich tun?")
    page.get_by_label("Ihre Frage an den Chatbot").press("Enter")
    bot = log.locator(".chat-bot").first
    expect(bot).to_contain_text("Personalausweis", timeout=10000)
    expect(bot).to_contain_text("Mitbringen")
    expect(page.get_by_label("Ihre Frage an den Chatbot")).to_be_focused()

    page.get_by_label("Ihre Frage an den Chatbot").fill("<b>fett</b> <img src=x onerror=alert(1)>")
    page.get_by_role("button", name="Senden").click()
    expect(log.locator(".chat-bot")).to_have_count(2, timeout=10000)
    expect(log.locator(".chat-citizen").nth(1)).to_contain_text("<b>fett</b>")
    assert log.locator("b, img").count() == 0

    page.get_by_role("button", name="Mit einer Person sprechen").click()
    expect(log.locator(".chat-bot")).to_have_count(3, timeout=10000)
    wait = log.get_by_role("button", name="In den Warteraum gehen")
    expect(wait).to_be_visible()
    expect(log.get_by_role("link", name="Einen Termin vereinbaren")).to_be_visible()
    wait.click()
    page.wait_for_url("**/wait/**", timeout=10000)
    expect(page.get_by_role("heading", name="Sie sind im Warteraum")).to_be_visible()
    assert not problems, problems
    context.close()
