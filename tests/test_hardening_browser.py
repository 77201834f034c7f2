"""Issue 15, finding 3, in Chromium: a reloaded citizen page leaves no ghost and the advisor sees the
citizen's picture again within seconds; the citizen link opened in a second window takes the seat and the
first window says so (tests/browser_support.py, as tests/test_browser.py)."""

from __future__ import annotations

import time

import pytest

from tests.browser_support import DESKTOP, MOBILE, create_room, join_call, media_stats, open_page

pytestmark = pytest.mark.browser


def decoding_again(page, timeout: float) -> float:
    """Seconds until the page's current peer connection decodes fresh remote video (10 more frames)."""
    start = time.monotonic()
    before = media_stats(page)["frames"]
    while media_stats(page)["frames"] < before + 10:
        assert time.monotonic() - start < timeout, "the remote video did not come back"
        time.sleep(0.2)
    return time.monotonic() - start


def rejoin(page) -> None:
    page.wait_for_function("() => document.getElementById('preview-video').videoWidth > 0", timeout=10000)
    page.get_by_role("button", name="Beitreten", exact=True).click()
    page.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=10000)


def test_a_reloaded_citizen_page_leaves_one_tile_and_the_advisor_sees_it_again(browser, server):
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    citizen = open_page(browser, room["citizen_url"], MOBILE, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
    join_call(citizen, advisor)
    decoding_again(advisor, 20)
    for attempt in range(3):
        citizen.reload()
        rejoin(citizen)
        expect(advisor.locator(".tile[data-participant-id]")).to_have_count(1, timeout=3000)
        assert decoding_again(advisor, 5.0) < 5.0, attempt
    assert not errors, errors
    for page in (citizen, advisor):
        page.context.close()


def test_the_citizen_link_in_a_second_window_takes_the_seat(browser, server):
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    first = open_page(browser, room["citizen_url"], MOBILE, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
    join_call(first, advisor)
    decoding_again(advisor, 20)
    second = open_page(browser, room["citizen_url"], MOBILE, errors)  # another window: no resume secret
    second.get_by_label("Ihr Name").fill("Frau Yılmaz")
    rejoin(second)
    expect(first.locator("#left-text")).to_contain_text("in einem anderen Fenster")
    assert first.evaluate("window.sprechstunde.state") == "left"
    expect(advisor.locator(".tile[data-participant-id]")).to_have_count(1, timeout=3000)
    new_id = second.evaluate("window.sprechstunde.participantId")
    expect(advisor.locator(f'.tile[data-participant-id="{new_id}"]')).to_have_count(1)
    assert decoding_again(advisor, 5.0) < 5.0
    time.sleep(2)  # the first window does not come back and take the seat again
    assert first.evaluate("window.sprechstunde.state") == "left"
    assert second.evaluate("window.sprechstunde.state") == "in-call"
    assert not errors, errors
    for page in (first, second, advisor):
        page.context.close()
