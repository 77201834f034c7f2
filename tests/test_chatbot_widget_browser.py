"""The chat widget in a real browser at 360 px (Debian chromium via Playwright, the real server process and
CSP), in German and on an Arabic page: the automated-assistant notice at the start of the conversation,
each answer's "last checked" and responsible office, the offer to talk to a person naming the VHS after a
VHS question and saying that someone who speaks the citizen's language is online — with its buttons inside
the phone's width — and the download of the conversation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sprechstunde.strings import Catalog
from tests.browser_support import DESKTOP, ROOT, running_server, screenshot, sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
PASSWORD = "richtig-langes-passwort"
CATALOG = Catalog()
# the buttons and links of the offers under the latest bot message (the one answering "talk to a person")
LAST_OFFERS = ".chat-bot:last-child .chat-offers :is(.button, button, a)"
# the VHS open around the clock, advising in Arabic too (23:59-00:00 Berlin is the one closed minute)
OFFICES = """
timezone = "Europe/Berlin"
holiday_state = ""
languages = ["de", "en", "fr", "it", "pl", "tr", "ku", "ar"]
[offices.vhs]
name_de = "Volkshochschule"
name_en = "Adult Education Centre"
[offices.vhs.hours]
mon = "00:00-23:59"
tue = "00:00-23:59"
wed = "00:00-23:59"
thu = "00:00-23:59"
fri = "00:00-23:59"
sat = "00:00-23:59"
sun = "00:00-23:59"
[offices.buergertelefon]
name_de = "Bürgertelefon"
name_en = "Citizens' Hotline"
"""


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("chat-widget")
    offices = data / "offices.toml"
    offices.write_text(OFFICES, encoding="utf-8")
    with running_server(data, "--offices", str(offices)) as server:
        command = [
            sys.executable, "-m", "sprechstunde", "user", "add", "beraterin", "--office", "vhs",
            "--language", "de", "--language", "ar", "--role", "advisor", "--password-stdin",
            "--data-dir", str(data),
        ]  # fmt: skip
        subprocess.run(command, cwd=ROOT, input=PASSWORD + "\n", text=True, check=True, timeout=30,
                       capture_output=True)  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def advisor_online(browser, chat_server):
    """An advisor of the VHS (German, Arabic) with the console open: "Beratung online"."""
    context = browser.new_context(locale="de-DE", viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, chat_server["base_url"], "beraterin", PASSWORD)
    yield page
    context.close()


def _outside(page, selector: str) -> list[str]:
    """The elements matching `selector` whose bounding box is not inside the viewport and inside the
    visible part of the chat log (which scrolls: a button below its edge is cut off for the citizen)."""
    view = page.viewport_size
    log = page.locator("#chat-log").bounding_box()
    left, top = max(0, log["x"]), max(0, log["y"])
    right, bottom = min(view["width"], log["x"] + log["width"]), min(view["height"], log["y"] + log["height"])
    problems = []
    for element in page.locator(selector).all():
        box = element.bounding_box()
        assert box is not None, selector
        if (
            box["x"] < left - 0.5
            or box["y"] < top - 0.5
            or box["x"] + box["width"] > right + 0.5
            or box["y"] + box["height"] > bottom + 0.5
        ):
            problems.append(f"{element.inner_text()!r}: {box} not inside x {left}–{right}, y {top}–{bottom}")
    return problems


def _ask_and_hand_over(page, lang: str, question: str, expect) -> None:
    t = CATALOG.strings(lang)
    log = page.get_by_role("log", name=t["chat.log"])
    # the automated-assistant notice is there before the first question, at the start of the log
    notice = log.locator(".chat-notice")
    expect(notice).to_be_visible()
    expect(notice).to_have_text(t["chat.ai_notice"])
    page.get_by_label(t["chat.input"]).fill(question)
    page.get_by_label(t["chat.input"]).press("Enter")
    answer = log.locator(".chat-bot").first
    expect(answer.locator(".chat-meta")).to_contain_text(t["chat.meta.checked"].split("{")[0].strip())
    expect(answer.locator(".chat-meta")).to_contain_text("Volkshochschule")
    assert log.locator(":scope > *").first.get_attribute("id") == "chat-ai-notice"

    page.get_by_role("button", name=t["chat.person"]).click()
    expect(log.locator(".chat-bot")).to_have_count(2, timeout=10000)
    offers = log.locator(".chat-bot").nth(1).locator(".chat-offers")
    expect(offers.locator(".chat-offer-office")).to_have_text(
        t["chat.meta.office"].replace("{office}", "Volkshochschule")
    )
    online = t["chat.video.language_online"].split("{language}")
    expect(offers.locator(".chat-offer-language")).to_contain_text(online[-1].strip())
    expect(offers.get_by_role("button").first).to_be_visible()


def test_the_widget_on_a_360px_phone_in_german(browser, chat_server, advisor_online):
    from playwright.sync_api import expect

    context = browser.new_context(locale="de-DE", viewport=PHONE, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    sent: list[tuple[str, str, str]] = []  # every request: method, URL, body
    page.on("request", lambda request: sent.append((request.method, request.url, request.post_data or "")))
    page.goto(chat_server["base_url"] + "/?lang=de")
    _ask_and_hand_over(page, "de", "Wie melde ich mich für einen VHS-Kurs an?", expect)
    offers = page.locator(".chat-offers").last
    expect(offers.get_by_role("button", name="Jetzt per Video sprechen (Volkshochschule)")).to_be_visible()
    expect(offers).to_contain_text("Beratung auf Deutsch: Gerade ist jemand online.")
    assert _outside(page, LAST_OFFERS) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "chat-widget-de-360")

    # the download: a POST and a blob URL — the browser's download list keeps no URL with the conversation
    # id (the capability), which the next user of a shared computer could open
    save = page.get_by_role("button", name="Gespräch herunterladen (Textdatei)")
    expect(save).to_be_visible()
    with page.expect_download() as download:
        save.click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    bot_answer = page.locator("#chat-log .chat-bot .chat-text p").first.text_content()
    assert (
        text.startswith("Ihr Gespräch mit dem Chatbot\n")
        and "Wie melde ich mich für einen VHS-Kurs an?" in text
        and bot_answer.strip() in text
    )
    assert download.value.suggested_filename.startswith("chatbot-")
    assert download.value.url.startswith("blob:")
    asked = [json.loads(body) for method, url, body in sent if url.endswith("/api/chatbot/messages")]
    conversation = asked[-1]["conversation_id"]
    downloads = [(method, url, json.loads(body)) for method, url, body in sent if "download" in url]
    assert downloads == [
        ("POST", chat_server["base_url"] + "/api/chatbot/download", {"conversation_id": conversation})
    ]
    assert all(conversation not in url for _, url, _ in sent) and conversation not in download.value.url
    assert not problems, problems

    # without an answer the chat goes on: a status line, the button usable again, no script error
    page.route("**/api/chatbot/download", lambda route: route.abort())
    save.click()
    expect(page.locator("#chat-status")).to_have_text(CATALOG.get("de", "chat.download.failed"))
    expect(save).to_be_enabled()
    assert not [p for p in problems if "ERR_FAILED" not in p], problems
    context.close()


def test_the_widget_on_an_arabic_page_at_360px(browser, chat_server, advisor_online):
    from playwright.sync_api import expect

    context = browser.new_context(locale="ar", viewport=PHONE)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(chat_server["base_url"] + "/?lang=ar")
    assert page.evaluate("() => document.documentElement.dir") == "rtl"
    _ask_and_hand_over(page, "ar", "كيف أسجّل في دورة لدى مدرسة تعليم الكبار (VHS)؟", expect)
    offers = page.locator(".chat-offers").last
    expect(offers).to_contain_text("العربية")
    assert _outside(page, LAST_OFFERS) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "chat-widget-ar-360")
    expect(page.get_by_role("button", name="تنزيل المحادثة (ملف نصي)")).to_be_visible()
    assert not problems, problems
    context.close()
