"""Issue 17, item 6 in real browsers: an advisor and a citizen chat, then an interpreter joins through a guest
link and sees both earlier messages with their names; after everyone's network drops and the pages
reconnect, no message is shown twice.

Three Debian chromium pages through the real server process (tests/browser_support.py). With INCALL_SHOTS
set to a directory, the guest's page is saved there as h4-guest-history.png.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser_support import DESKTOP, TcpProxy, create_room, guest_url, join_call, open_page

pytestmark = pytest.mark.browser

TALL = {"width": 1280, "height": 1100}  # room for the chat column in the screenshot
ADVISOR_TEXT = "Guten Tag, ich habe eine Dolmetscherin dazugeholt."
CITIZEN_TEXT = "Danke! Es geht um den <b>Wohngeld</b>-Bescheid."


def write(page, text: str) -> None:
    page.get_by_label("Nachricht", exact=True).fill(text)
    page.get_by_role("button", name="Senden", exact=True).click()


def chat_lines(page) -> list[tuple[str, str]]:
    """(name line, text) of every message in the page's chat, top to bottom, as shown."""
    return [
        tuple(line)
        for line in page.locator("#chat-log .chat-message").evaluate_all(
            "items => items.map(li => [li.querySelector('.chat-name').textContent,"
            " li.querySelector('.chat-text').textContent])"
        )
    ]


def call_behind(proxy: TcpProxy, browser, server, errors: list[str]) -> tuple:
    """A new room reached through `proxy`; citizen and advisor pages in the call: (room, citizen, advisor)."""
    room = create_room(server, f"http://127.0.0.1:{proxy.port}")
    citizen = open_page(browser, room["citizen_url"], DESKTOP, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
    join_call(citizen, advisor)
    return room, citizen, advisor


def test_interpreter_joining_later_sees_the_chat_so_far(browser, server):
    from playwright.sync_api import expect

    proxy = TcpProxy(server["port"])
    try:
        errors: list[str] = []
        room, citizen, advisor = call_behind(proxy, browser, server, errors)
        write(advisor, ADVISOR_TEXT)
        expect(citizen.locator("#chat-log .chat-message")).to_have_count(1)
        write(citizen, CITIZEN_TEXT)
        expect(advisor.locator("#chat-log .chat-message")).to_have_count(2)

        guest = open_page(browser, guest_url(server, room), TALL, errors)
        guest.get_by_label("Ihr Name").fill("Ada Dolmetscherin")
        guest.get_by_role("button", name="Beitreten", exact=True).click()
        guest.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=10000)
        log = guest.locator("#chat-log .chat-message")
        expect(log).to_have_count(2)
        expect(log.nth(0)).to_contain_text("Beratung")
        expect(log.nth(0)).to_contain_text(ADVISOR_TEXT)
        expect(log.nth(1)).to_contain_text("Frau Yılmaz")
        expect(log.nth(1)).to_contain_text(CITIZEN_TEXT)  # as text: no markup made of it
        assert guest.locator("#chat-log b").count() == 0
        expect(guest.locator("#chat-empty")).to_be_hidden()
        assert chat_lines(guest) == [("Beratung", ADVISOR_TEXT), ("Frau Yılmaz", CITIZEN_TEXT)]
        expect(log.nth(0).locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
        shots = os.environ.get("INCALL_SHOTS")
        if shots:
            guest.screenshot(path=str(Path(shots) / "h4-guest-history.png"))

        # The interpreter writes too; then every page's network drops and they reconnect (resume):
        # each gets the history again with its welcome, and still shows every message once.
        write(guest, "Ich übersetze ab jetzt.")
        pages = {"citizen": citizen, "advisor": advisor, "guest": guest}
        for page in pages.values():
            expect(page.locator("#chat-log .chat-message")).to_have_count(3)
        proxy.drop()
        expect(citizen.locator("#status")).to_have_text("Verbindung wird wiederhergestellt…")
        for page in pages.values():
            page.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=10000)
        write(advisor, "Wieder da.")
        expected = [ADVISOR_TEXT, CITIZEN_TEXT, "Ich übersetze ab jetzt.", "Wieder da."]
        for name, page in pages.items():
            expect(page.locator("#chat-log .chat-message")).to_have_count(4)
            assert [text for _, text in chat_lines(page)] == expected, name
        # a reload resumes the same seat: the history is there once more, in order, own messages marked
        guest.reload()
        guest.get_by_role("button", name="Beitreten", exact=True).click()
        guest.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=10000)
        expect(guest.locator("#chat-log .chat-message")).to_have_count(4)
        assert [text for _, text in chat_lines(guest)] == expected
        assert not errors, errors
        for page in pages.values():
            page.context.close()
    finally:
        proxy.close()


def test_a_message_written_while_the_connection_is_away_is_sent_once_it_is_back(browser, server):
    """Written while the network is away: shown at once as "wird gesendet …", sent after the reconnect,
    shown once on both pages and marked no more; a message the server refuses (only a direction mark,
    which the server strips) leaves the chat with the server's reason instead of waiting forever."""
    from playwright.sync_api import expect

    proxy = TcpProxy(server["port"])
    try:
        errors: list[str] = []
        room, citizen, advisor = call_behind(proxy, browser, server, errors)
        write(citizen, "Vorher geschrieben.")
        expect(advisor.locator("#chat-log .chat-message")).to_have_count(1)
        expect(citizen.locator("#chat-log .chat-message.pending")).to_have_count(0)

        proxy.refusing.set()
        proxy.drop()
        expect(citizen.locator("#status")).to_have_text("Verbindung wird wiederhergestellt…")
        write(citizen, "Während der Unterbrechung geschrieben.")
        pending = citizen.locator("#chat-log .chat-message.pending")
        expect(pending).to_have_count(1)
        expect(pending).to_contain_text("wird gesendet …")
        expect(citizen.get_by_label("Nachricht", exact=True)).to_have_value("")  # taken, not lost
        proxy.refusing.clear()
        for page in (citizen, advisor):
            page.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=15000)
        expect(pending).to_have_count(0, timeout=10000)
        expected = ["Vorher geschrieben.", "Während der Unterbrechung geschrieben."]
        for page in (citizen, advisor):
            expect(page.locator("#chat-log .chat-message")).to_have_count(2)
            assert [text for _, text in chat_lines(page)] == expected
        assert chat_lines(citizen)[1][0].endswith("(Sie)")  # still shown as the citizen's own

        write(citizen, "\u200e")  # the page sends it; the server strips the mark and refuses
        expect(citizen.locator("#chat-error")).to_contain_text("bad_message")
        expect(citizen.locator("#chat-log .chat-message")).to_have_count(2)
        assert not errors, errors
        for page in (citizen, advisor):
            page.context.close()
    finally:
        proxy.close()
