"""Real-browser test: two Chromium pages hold a consultation through the real server process.

Drives Debian's /usr/bin/chromium with Playwright (never `playwright install`). The fake camera and
microphone of Chromium produce real media; the server forwards it over loopback without decoding. The
`browser` and `server` fixtures (tests/conftest.py) and the helpers live in tests/browser_support.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.browser_support import (
    DESKTOP,
    MOBILE,
    TcpProxy,
    assert_media_flows,
    create_room,
    guest_url,
    join_call,
    open_page,
    screenshot,
    wait_for_decoded_video,
)

pytestmark = pytest.mark.browser


def test_two_party_call(browser, server, record_property):
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    citizen = open_page(browser, room["citizen_url"], MOBILE, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)

    # The citizen must give a name; the advisor may join with the default one.
    citizen.get_by_role("button", name="Beitreten", exact=True).click()
    expect(citizen.get_by_text("Bitte geben Sie Ihren Namen ein.")).to_be_visible()
    assert citizen.evaluate("window.sprechstunde.state") == "prejoin"

    join_call(citizen, advisor)
    first_frame = {}
    for name, page in (("citizen", citizen), ("advisor", advisor)):
        page.wait_for_function("() => window.__probe.firstFrameMs !== null", timeout=15000)
        first_frame[name] = round(page.evaluate("window.__probe.firstFrameMs"))
        record_property(f"join_to_first_frame_ms_{name}", first_frame[name])
    print(
        f"\njoin → first decoded remote frame: citizen {first_frame['citizen']} ms, "
        f"advisor {first_frame['advisor']} ms"
    )

    decoded = assert_media_flows({"citizen": citizen, "advisor": advisor})
    print(f"remote video frames decoded in 2 s: {decoded}")

    citizen_id = citizen.evaluate("window.sprechstunde.participantId")
    advisor_id = advisor.evaluate("window.sprechstunde.participantId")
    expect(advisor.locator(f'.tile[data-participant-id="{citizen_id}"]')).to_contain_text("Frau Yılmaz")
    expect(citizen.locator(f'.tile[data-participant-id="{advisor_id}"]')).to_contain_text("Beratung")

    # Chat is plain text: markup arrives literally, never as HTML.
    advisor.get_by_role("textbox", name="Nachricht").fill("<b>x</b>")
    advisor.get_by_role("button", name="Senden").click()
    message = citizen.locator("#chat-log .chat-message").last
    expect(message.locator(".chat-text")).to_have_text("<b>x</b>")
    expect(message.locator(".chat-name")).to_have_text("Beratung")
    assert citizen.locator("#chat-log b").count() == 0
    expect(advisor.locator("#chat-log .chat-text").last).to_have_text("<b>x</b>")

    screenshot(citizen, "citizen-mobile")
    screenshot(advisor, "advisor-desktop")

    # The citizen leaves; the advisor's page drops the tile.
    citizen.get_by_role("button", name="Verlassen").click()
    citizen.get_by_role("button", name="Ja, verlassen").click()  # the confirmation dialog (issue 17)
    expect(citizen.get_by_role("heading", name="Sie haben die Beratung verlassen")).to_be_visible()
    assert citizen.evaluate("window.sprechstunde.state") == "left"
    expect(advisor.locator(f'.tile[data-participant-id="{citizen_id}"]')).to_have_count(0)
    expect(advisor.locator("#status")).to_contain_text("Frau Yılmaz")
    assert advisor.evaluate("window.sprechstunde.state") == "in-call"

    assert not errors, errors
    for page in (citizen, advisor):
        page.context.close()


VIDEO_DECODERS = """
async () => {
  const stats = await window.sprechstunde.pc.getStats();
  const out = [];
  for (const s of stats.values()) {
    if (s.type !== "inbound-rtp" || s.kind !== "video") continue;
    const codec = s.codecId && stats.get(s.codecId);
    out.push({ mid: s.mid, frames: s.framesDecoded || 0, codec: codec ? codec.mimeType : null });
  }
  return out;
}
"""


def decoding_videos(page) -> list[dict]:
    """Per remote video of the page: frames decoded so far and the codec it arrives in."""
    return [v for v in page.evaluate(VIDEO_DECODERS) if v["frames"] > 0]


def test_interpreter_decodes_both_others(browser, server, record_property):
    room = create_room(server)
    errors: list[str] = []
    citizen = open_page(browser, room["citizen_url"], MOBILE, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
    join_call(citizen, advisor)
    interpreter = open_page(browser, guest_url(server, room), DESKTOP, errors)
    interpreter.get_by_role("button", name="Beitreten", exact=True).click()
    interpreter.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=10000)
    pages = {"citizen": citizen, "advisor": advisor, "interpreter": interpreter}
    for name, page in pages.items():
        deadline = time.monotonic() + 20
        while len(decoding_videos(page)) < 2:
            assert time.monotonic() < deadline, (name, page.evaluate(VIDEO_DECODERS))
            time.sleep(0.2)
    # a newcomer sees a picture within a second of joining (keyframe requested on subscription)
    interpreter.wait_for_function("() => window.__probe.firstFrameMs !== null", timeout=15000)
    first_frame = round(interpreter.evaluate("window.__probe.firstFrameMs"))
    record_property("interpreter_join_to_first_frame_ms", first_frame)
    print(f"\ninterpreter: join → first decoded remote frame {first_frame} ms")
    assert first_frame < 1000, first_frame
    before = {name: decoding_videos(page) for name, page in pages.items()}
    time.sleep(2)
    for name, page in pages.items():
        after = {v["mid"]: v["frames"] for v in decoding_videos(page)}
        for video in before[name]:
            assert after[video["mid"]] > video["frames"], (name, before[name], after)
        # forwarded as the browsers sent it: nothing was decoded and re-encoded on the server
        assert {v["codec"] for v in before[name]} == {"video/VP8"}, before[name]
    assert interpreter.locator("#remote-tiles .tile").count() == 2
    assert "no shared video codec" not in Path(server["log"]).read_text()
    assert not errors, errors
    for page in pages.values():
        page.context.close()


def test_reconnect_resumes_after_network_drop(browser, server):
    from playwright.sync_api import expect

    proxy = TcpProxy(server["port"])
    try:
        room = create_room(server, f"http://127.0.0.1:{proxy.port}")
        errors: list[str] = []
        citizen = open_page(browser, room["citizen_url"], MOBILE, errors)
        advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
        pages = {"citizen": citizen, "advisor": advisor}
        join_call(citizen, advisor)
        ids = {}
        for name, page in pages.items():
            page.wait_for_function("() => window.__probe.firstFrameMs !== null", timeout=15000)
            page.evaluate("window.__oldPc = window.sprechstunde.pc")
            ids[name] = page.evaluate("window.sprechstunde.participantId")

        proxy.drop()  # both signaling sockets die without a close handshake
        expect(citizen.locator("#status")).to_have_text("Verbindung wird wiederhergestellt…")
        for name, page in pages.items():
            page.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=10000)
            # Resumed within the grace period: the same participant, on a fresh RTCPeerConnection.
            assert page.evaluate("window.sprechstunde.participantId") == ids[name]
            assert page.evaluate("window.sprechstunde.pc !== window.__oldPc")
        expect(advisor.locator(f'.tile[data-participant-id="{ids["citizen"]}"]')).to_have_count(1)
        expect(citizen.locator(f'.tile[data-participant-id="{ids["advisor"]}"]')).to_have_count(1)
        for page in pages.values():
            wait_for_decoded_video(page)
        assert_media_flows(pages)
        assert not errors, errors
        for page in pages.values():
            page.context.close()
    finally:
        proxy.close()


def test_others_keep_decoding_when_one_publisher_reconnects(browser, server):
    """Only the citizen's network drops (a phone moving from Wi-Fi to mobile data): the advisor keeps
    its peer connection, and the citizen's video, now from a fresh peer connection with a new VP8
    encoder (new picture ids, a new RTP clock), goes on being decoded on the advisor's same m-line."""
    proxy = TcpProxy(server["port"])
    try:
        room = create_room(server, f"http://127.0.0.1:{proxy.port}")
        errors: list[str] = []
        citizen = open_page(browser, room["citizen_url"], MOBILE, errors)
        direct = room["advisor_url"].replace(f":{proxy.port}/", f":{server['port']}/")
        advisor = open_page(browser, direct, DESKTOP, errors)
        pages = {"citizen": citizen, "advisor": advisor}
        join_call(citizen, advisor)
        for page in pages.values():
            wait_for_decoded_video(page)
            page.evaluate("window.__oldPc = window.sprechstunde.pc")

        proxy.drop()  # the citizen's signaling socket dies; the advisor's does not pass the proxy
        citizen.wait_for_function(
            "() => window.sprechstunde.state === 'in-call' && window.sprechstunde.pc !== window.__oldPc",
            timeout=15000,
        )
        assert advisor.evaluate("window.sprechstunde.pc === window.__oldPc")
        wait_for_decoded_video(citizen)
        flowing = assert_media_flows(pages)
        assert flowing["advisor"] >= 20, flowing  # the fake camera sends ~30 fps
        assert not errors, errors
        for page in pages.values():
            page.context.close()
    finally:
        proxy.close()


def test_tampered_link_is_refused(browser, server):
    room = create_room(server)
    body, signature = room["citizen_url"].rsplit(".", 1)
    tampered = f"{body}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    context = browser.new_context(locale="de-DE")
    page = context.new_page()
    response = page.goto(tampered)
    assert response.status == 403
    content = page.content()
    assert "ungültig" in content
    assert "Traceback" not in content
    assert page.locator("#join-button").count() == 0
    context.close()
