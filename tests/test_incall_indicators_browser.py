"""Issue 17, item 4, in two real Chromium pages holding a call through the real server.

What the other person sees: the muted-microphone mark and the name instead of a black picture when the
camera is off (and both gone when they are back on), a connection-quality mark with its numbers, pin and
fullscreen of a remote tile, on a phone the unread count on the chat toggle, and "Verlassen" that asks first.
"""

from __future__ import annotations

import re

import pytest

from tests.browser_support import DESKTOP, create_room, join_call, open_page, wait_for_decoded_video
from tests.test_incall_prejoin_browser import shot

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
QUALITY = re.compile(
    r"^Verbindung zu Frau Yılmaz: (gut|mäßig|schlecht) "
    r"\(Paketverlust \d+(,\d)? %, Laufzeit \d+ ms, \d+ Bilder/s\)$"
)


def test_remote_mute_camera_off_quality_pin_and_fullscreen(browser, server):
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    citizen = open_page(browser, room["citizen_url"], DESKTOP, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
    join_call(citizen, advisor)
    wait_for_decoded_video(advisor)
    citizen_id = citizen.evaluate("window.sprechstunde.participantId")
    tile = advisor.locator(f'.tile[data-participant-id="{citizen_id}"]')
    muted_mark = tile.get_by_role("img", name="Mikrofon aus")
    camera_off = tile.get_by_text("Kamera aus", exact=True)
    expect(tile.locator("video")).to_be_visible()
    expect(muted_mark).to_be_hidden()
    expect(camera_off).to_be_hidden()

    # The citizen switches microphone and camera off: the advisor sees the mark and the initials + text.
    citizen.get_by_role("button", name="Mikrofon ausschalten").click()
    citizen.get_by_role("button", name="Kamera ausschalten").click()
    expect(muted_mark).to_be_visible()
    expect(camera_off).to_be_visible()
    expect(tile.locator(".avatar")).to_have_text("FY")
    expect(tile.locator(".avatar")).to_be_visible()
    expect(tile.locator("video")).to_be_hidden()  # no black picture
    expect(tile.locator(".tile-name")).to_contain_text("Frau Yılmaz")
    shot(advisor, "h2-muted-tile")

    # Back on: both marks are gone and the picture is back.
    citizen.get_by_role("button", name="Mikrofon einschalten").click()
    citizen.get_by_role("button", name="Kamera einschalten").click()
    expect(muted_mark).to_be_hidden()
    expect(camera_off).to_be_hidden()
    expect(tile.locator("video")).to_be_visible()

    # Connection quality from getStats(): a rating and its numbers, as label and tooltip.
    quality = tile.locator(".quality")
    expect(quality).to_have_attribute("aria-label", QUALITY, timeout=15000)
    label = quality.get_attribute("aria-label")
    assert quality.get_attribute("title") == label
    rating = QUALITY.match(label).group(1)
    expect(quality).to_contain_text(rating)
    expect(tile.get_by_role("img", name=label, exact=True)).to_be_visible()
    shot(advisor, "h2-quality", full_page=False)

    # Pin: the tile is marked large; the button says how to undo it.
    pin = tile.get_by_role("button", name="Frau Yılmaz groß anzeigen")
    pin.click()
    unpin = tile.get_by_role("button", name="Frau Yılmaz wieder normal anzeigen")
    expect(unpin).to_have_attribute("aria-pressed", "true")
    expect(tile).to_have_class(re.compile(r"\bpinned\b"))
    unpin.click()
    expect(pin).to_have_attribute("aria-pressed", "false")
    expect(tile).not_to_have_class(re.compile(r"\bpinned\b"))

    # Fullscreen: the tile fills the screen; the same button (now "Vollbild beenden") ends it.
    tile.get_by_role("button", name="Frau Yılmaz im Vollbild zeigen").click()
    advisor.wait_for_function(
        "() => document.fullscreenElement && document.fullscreenElement.classList.contains('tile')"
    )
    assert advisor.evaluate("() => document.fullscreenElement.offsetWidth") == DESKTOP["width"]
    tile.get_by_role("button", name="Vollbild beenden").click()
    advisor.wait_for_function("() => document.fullscreenElement === null")
    expect(tile.get_by_role("button", name="Frau Yılmaz im Vollbild zeigen")).to_be_visible()

    assert not errors, errors
    for page in (citizen, advisor):
        page.context.close()


def test_phone_unread_badge_and_leave_confirmation(browser, server):
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    citizen = open_page(browser, room["citizen_url"], PHONE, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
    join_call(citizen, advisor)

    # On the phone the chat waits behind its toggle; a message from the advisor shows "1" on it.
    toggle = citizen.locator("#chat-toggle")
    expect(toggle).to_be_visible()
    expect(citizen.get_by_role("textbox", name="Nachricht")).to_be_hidden()
    expect(citizen.locator("#chat-unread")).to_be_hidden()
    advisor.get_by_role("textbox", name="Nachricht").fill("Haben Sie das Formular?")
    advisor.get_by_role("button", name="Senden").click()
    badge = citizen.locator("#chat-unread")
    expect(badge).to_be_visible()
    expect(badge).to_have_text("1")
    expect(citizen.get_by_role("button", name="Chat, 1 ungelesen")).to_be_visible()
    toggle.scroll_into_view_if_needed()
    shot(citizen, "h2-chat-badge-360", full_page=False)
    # the advisor's own page (chat beside the stage) counts nothing
    expect(advisor.locator("#chat-toggle")).to_be_hidden()

    citizen.get_by_role("button", name="Chat, 1 ungelesen").click()
    expect(badge).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(citizen.locator("#chat-log .chat-text").last).to_have_text("Haben Sie das Formular?")
    expect(citizen.locator("#chat-log .chat-text").last).to_be_visible()
    toggle.click()  # closed again
    expect(citizen.get_by_role("textbox", name="Nachricht")).to_be_hidden()

    # "Verlassen" asks first; Escape and "Im Gespräch bleiben" keep the call.
    dialog = citizen.get_by_role("dialog", name="Gespräch verlassen?")
    citizen.get_by_role("button", name="Verlassen", exact=True).click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("über denselben Link wieder beitreten")
    expect(dialog.get_by_role("button", name="Im Gespräch bleiben")).to_be_focused()
    shot(citizen, "h2-leave-dialog-360", full_page=False)
    citizen.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert citizen.evaluate("window.sprechstunde.state") == "in-call"

    citizen.get_by_role("button", name="Verlassen", exact=True).click()
    dialog.get_by_role("button", name="Im Gespräch bleiben").click()
    expect(dialog).to_be_hidden()
    expect(citizen.get_by_role("button", name="Verlassen", exact=True)).to_be_focused()
    assert citizen.evaluate("window.sprechstunde.state") == "in-call"
    citizen_id = citizen.evaluate("window.sprechstunde.participantId")
    expect(advisor.locator(f'.tile[data-participant-id="{citizen_id}"]')).to_have_count(1)

    citizen.get_by_role("button", name="Verlassen", exact=True).click()
    dialog.get_by_role("button", name="Ja, verlassen").click()
    expect(citizen.get_by_role("heading", name="Sie haben die Beratung verlassen")).to_be_visible()
    assert citizen.evaluate("window.sprechstunde.state") == "left"
    expect(advisor.locator(f'.tile[data-participant-id="{citizen_id}"]')).to_have_count(0)

    assert not errors, errors
    for page in (citizen, advisor):
        page.context.close()


def test_pinned_tile_is_large_among_three(browser, server):
    from playwright.sync_api import expect

    from tests.browser_support import guest_url

    room = create_room(server)
    errors: list[str] = []
    citizen = open_page(browser, room["citizen_url"], DESKTOP, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
    guest = open_page(browser, guest_url(server, room), DESKTOP, errors)
    join_call(citizen, advisor)
    guest.get_by_role("button", name="Beitreten", exact=True).click()
    guest.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=10000)
    expect(advisor.locator("#remote-tiles .tile")).to_have_count(2)
    citizen_id = citizen.evaluate("window.sprechstunde.participantId")
    guest_id = guest.evaluate("window.sprechstunde.participantId")
    pinned = advisor.locator(f'.tile[data-participant-id="{citizen_id}"]')
    other = advisor.locator(f'.tile[data-participant-id="{guest_id}"]')
    before = pinned.bounding_box()
    pinned.get_by_role("button", name="Frau Yılmaz groß anzeigen").click()
    expect(pinned).to_have_class(re.compile(r"\bpinned\b"))
    big, small = pinned.bounding_box(), other.bounding_box()
    assert big["width"] * big["height"] > 1.5 * before["width"] * before["height"], (before, big)
    assert big["width"] * big["height"] > 4 * small["width"] * small["height"], (big, small)
    expect(other).to_be_visible()  # still there, as a small tile below
    shot(advisor, "h2-pinned", full_page=False)
    # the pinned person leaves: the layout goes back to equal tiles
    citizen.get_by_role("button", name="Verlassen", exact=True).click()
    citizen.get_by_role("button", name="Ja, verlassen").click()
    expect(pinned).to_have_count(0)
    expect(advisor.locator("#remote-tiles")).not_to_have_class(re.compile(r"\bhas-pinned\b"))

    assert not errors, errors
    for page in (citizen, advisor, guest):
        page.context.close()
