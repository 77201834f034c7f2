"""Real-browser test of screen sharing (issue 17 item 5): two Chromium pages through the real server.

Chromium's fake capture: with the suite's usual flags (--use-fake-device-for-media-stream and
--use-fake-ui-for-media-stream, tests/browser_support.py) getDisplayMedia picks a synthetic 1280×720
"screen" by itself, headless, without any picker — no further flag is needed.

Asserted as a person sees it: the other page shows the screen large, captioned with the sharer's name, and
decodes it (inbound-rtp of that very track, framesDecoded rising); the server forwarded it without
decoding (/metrics); stopping — the button, or the browser's own "stop sharing" — removes the stage and
the camera tiles go on. Both directions. SPRECHSTUNDE_SCREENSHOTS=/tmp/shots saves h3-screen-share.png.
"""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser_support import (
    DESKTOP,
    MOBILE,
    TcpProxy,
    create_room,
    join_call,
    media_stats,
    open_page,
    wait_for_decoded_video,
)

pytestmark = pytest.mark.browser

# The shown screen: its picture size and what the inbound-rtp of its track has decoded so far.
SCREEN_STATS = """
async () => {
  const video = document.getElementById("screen-video");
  const track = video && video.srcObject ? video.srcObject.getVideoTracks()[0] : null;
  const out = { width: video ? video.videoWidth : 0, frames: null };
  if (!track) return out;
  for (const s of (await window.sprechstunde.pc.getStats()).values()) {
    if (s.type === "inbound-rtp" && s.trackIdentifier === track.id) out.frames = s.framesDecoded || 0;
  }
  return out;
}
"""

# The browser's own "stop sharing" bar, as far as the page can tell: the capture track ends.
BROWSER_STOPS_SHARING = """
() => {
  const line = window.sprechstunde.pc.getTransceivers().find((t) => t.mid === "2");
  const track = line.sender.track;
  track.stop();
  track.dispatchEvent(new Event("ended"));
}
"""


def screen_stats(page) -> dict:
    return page.evaluate(SCREEN_STATS)


def forwarding_counters(server) -> dict[str, float]:
    """The server's own counters from /metrics (loopback may read them)."""
    with urllib.request.urlopen(f"{server['base_url']}/metrics", timeout=5) as response:
        text = response.read().decode()
    wanted = {
        'sprechstunde_media_frames_forwarded_total{kind="screen"}': "screen",
        'sprechstunde_media_frames_forwarded_total{kind="video"}': "video",
        "sprechstunde_media_frames_transcoded_total": "transcoded",
    }
    out = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
    return out


def assert_screen_decoding(viewer, sharer_name: str) -> None:
    """The viewer shows the screen large with the sharer's name, and keeps decoding it."""
    from playwright.sync_api import expect

    stage = viewer.locator("#screen-stage")
    expect(stage).to_be_visible(timeout=15000)
    expect(viewer.locator("#screen-caption")).to_have_text(f"Bildschirm von {sharer_name}")
    expect(viewer.get_by_role("figure", name=f"Bildschirm von {sharer_name}")).to_be_visible()
    deadline = time.monotonic() + 20
    while not (first := screen_stats(viewer))["frames"] or not first["width"]:
        assert time.monotonic() < deadline, first
        time.sleep(0.2)
    # (the fake screen starts at a few frames per second while the bandwidth estimate ramps up)
    deadline = time.monotonic() + 10
    later = screen_stats(viewer)
    while later["frames"] <= first["frames"] + 5 and time.monotonic() < deadline:
        time.sleep(0.5)
        later = screen_stats(viewer)
    assert later["frames"] > first["frames"] + 5, (first, later)
    assert later["width"] >= 960, later  # the 1280×720 fake screen, not the 640×360 camera
    # large: the stage is wider than any camera tile on the page
    stage_box = stage.bounding_box()
    tile_box = viewer.locator("#remote-tiles .tile").first.bounding_box()
    assert stage_box["width"] > 2 * tile_box["width"] and stage_box["height"] > 2 * tile_box["height"]


def assert_camera_layout_back(viewer) -> None:
    """No stage; the camera tile fills the stage again and keeps decoding."""
    from playwright.sync_api import expect

    expect(viewer.locator("#screen-stage")).to_be_hidden(timeout=15000)
    expect(viewer.locator(".stage.has-screen")).to_have_count(0)
    before = media_stats(viewer)
    time.sleep(2)
    after = media_stats(viewer)
    assert after["frames"] > before["frames"] + 5 and after["width"] > 0, (before, after)
    tile = viewer.locator("#remote-tiles .tile").first.bounding_box()
    stage = viewer.locator(".stage").bounding_box()
    assert tile["height"] > 0.8 * stage["height"], (tile, stage)


def test_screen_sharing_both_ways(browser, server):
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    citizen = open_page(browser, room["citizen_url"], DESKTOP, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
    join_call(citizen, advisor)
    for page in (citizen, advisor):
        wait_for_decoded_video(page, frames=5)
        expect(page.locator("#screen-stage")).to_be_hidden()
    before = forwarding_counters(server)

    # the advisor shares; the citizen sees it large
    share = advisor.get_by_role("button", name="Bildschirm teilen")
    share.click()
    expect(advisor.get_by_role("button", name="Teilen beenden")).to_be_visible()
    expect(advisor.locator("#screen-self")).to_have_text(
        "Sie teilen Ihren Bildschirm. Die anderen sehen ihn groß."
    )
    assert_screen_decoding(citizen, "Beratung")
    expect(citizen.locator("#status")).to_have_text("Beratung teilt den Bildschirm.")
    expect(advisor.locator("#screen-stage")).to_be_hidden()  # no hall of mirrors on the sharer's side
    # the camera tiles go on under the screen
    expect(citizen.locator("#remote-tiles .tile")).to_have_count(1)
    assert media_stats(citizen)["width"] > 0
    directory = os.environ.get("SPRECHSTUNDE_SCREENSHOTS")
    if directory:
        citizen.screenshot(path=str(Path(directory) / "h3-screen-share.png"))
        advisor.screenshot(path=str(Path(directory) / "h3-screen-share-sharer.png"))
        citizen.set_viewport_size(MOBILE)
        citizen.wait_for_timeout(500)
        citizen.screenshot(path=str(Path(directory) / "h3-screen-share-mobile.png"))
        citizen.set_viewport_size(DESKTOP)

    # forwarded like the camera: screen frames counted, none decoded on the server
    # (the fake screen runs at a few frames per second while the estimate ramps up: wait for ten)
    deadline = time.monotonic() + 15
    during = forwarding_counters(server)
    while during["screen"] <= before.get("screen", 0) + 10 and time.monotonic() < deadline:
        time.sleep(0.5)
        during = forwarding_counters(server)
    assert during["screen"] > before.get("screen", 0) + 10, (before, during)
    assert during["transcoded"] == 0, during

    # one screen at a time: the citizen is told who shares, without a picker
    citizen.get_by_role("button", name="Bildschirm teilen").click()
    expect(citizen.locator("#status")).to_contain_text("Beratung teilt gerade den Bildschirm.")
    expect(citizen.get_by_role("button", name="Bildschirm teilen")).to_be_visible()

    # the advisor stops with the button: back to the camera layout on both sides
    advisor.get_by_role("button", name="Teilen beenden").click()
    expect(advisor.get_by_role("button", name="Bildschirm teilen")).to_be_visible()
    expect(advisor.locator("#screen-self")).to_be_hidden()
    assert_camera_layout_back(citizen)
    expect(citizen.locator("#status")).to_have_text("Beratung hat das Teilen des Bildschirms beendet.")

    # now the citizen shares; the advisor sees it; the browser's own "stop" ends it
    citizen.get_by_role("button", name="Bildschirm teilen").click()
    assert_screen_decoding(advisor, "Frau Yılmaz")
    citizen.evaluate(BROWSER_STOPS_SHARING)
    expect(citizen.get_by_role("button", name="Bildschirm teilen")).to_be_visible()
    assert_camera_layout_back(advisor)
    assert_camera_layout_back(citizen)

    after = forwarding_counters(server)
    assert after["transcoded"] == 0, after
    assert not errors, errors
    for page in (citizen, advisor):
        page.context.close()


def test_without_get_display_media_the_button_is_gone_and_the_page_says_so(browser, server):
    """Phones (no getDisplayMedia): no share button; screen readers hear why."""
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    context = browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844})
    context.add_init_script("delete MediaDevices.prototype.getDisplayMedia;")
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(room["citizen_url"])
    page.wait_for_function("() => document.getElementById('preview-video').videoWidth > 0", timeout=10000)
    page.get_by_label("Ihr Name").fill("Frau Yılmaz")
    page.get_by_role("button", name="Beitreten", exact=True).click()
    page.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=10000)
    expect(page.locator("#screen-button")).to_be_hidden()
    assert page.get_by_role("button", name="Bildschirm teilen").count() == 0
    note = page.locator("#screen-unsupported")
    expect(note).to_have_text(
        "Bildschirm teilen ist in diesem Browser nicht möglich (zum Beispiel auf Smartphones)."
    )
    assert note.evaluate("(node) => !node.hidden && node.closest('[hidden]') === null")
    assert not errors, errors
    context.close()


def test_the_screen_comes_back_after_the_sharers_network_drops(browser, server):
    """The citizen shares, then its network drops (the signaling socket dies): its page resumes on a fresh
    peer connection, puts the same screen track on the new screen line and says it still shares; the
    advisor's stage keeps the screen and decodes it again, without anyone clicking anything."""
    from playwright.sync_api import expect

    proxy = TcpProxy(server["port"])
    try:
        room = create_room(server, f"http://127.0.0.1:{proxy.port}")
        errors: list[str] = []
        citizen = open_page(browser, room["citizen_url"], DESKTOP, errors)
        direct = room["advisor_url"].replace(f":{proxy.port}/", f":{server['port']}/")
        advisor = open_page(browser, direct, DESKTOP, errors)
        join_call(citizen, advisor)
        wait_for_decoded_video(citizen)
        citizen.get_by_role("button", name="Bildschirm teilen").click()
        assert_screen_decoding(advisor, "Frau Yılmaz")
        citizen.evaluate("window.__oldPc = window.sprechstunde.pc")

        proxy.drop()  # only the citizen's socket passes the proxy
        citizen.wait_for_function(
            "() => window.sprechstunde.state === 'in-call' && window.sprechstunde.pc !== window.__oldPc",
            timeout=15000,
        )
        expect(citizen.get_by_role("button", name="Teilen beenden")).to_be_visible()
        before = screen_stats(advisor)["frames"]
        deadline = time.monotonic() + 20
        while screen_stats(advisor)["frames"] < before + 10:
            assert time.monotonic() < deadline, (before, screen_stats(advisor))
            time.sleep(0.2)
        expect(advisor.locator("#screen-caption")).to_have_text("Bildschirm von Frau Yılmaz")
        assert not errors, errors
        for page in (citizen, advisor):
            page.context.close()
    finally:
        proxy.close()
