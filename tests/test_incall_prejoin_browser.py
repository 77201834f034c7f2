"""Issue 17, item 3, in a real Chromium: the pre-join microphone level meter and network check.

The level meter follows Chromium's fake microphone (a beep); the network check gathers ICE candidates with
the servers of the join page. On loopback the host candidates say "direct"; a page whose network lets
nothing but relayed traffic through (iceTransportPolicy "relay", as a strict firewall leaves it) gets the
hint what to do when there is no TURN server, and "only through the relay server" with a real coturn.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.browser_support import DESKTOP, create_room, open_page, running_server
from tests.test_turn import TURN_SECRET, coturn  # noqa: F401  (the coturn fixture)

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("INCALL_SHOTS", "/tmp/shots")
DIRECT = "Gut: Bild und Ton können direkt übertragen werden."
BLOCKED = "Ihr Netzwerk lässt Bild und Ton wahrscheinlich nicht durch."
RELAY = "Bild und Ton können nur über den Vermittlungsserver (TURN) übertragen werden."

# A network that lets nothing through but a TURN relay: every peer connection of the page is relay-only.
RELAY_ONLY = """
(() => {
  const Original = window.RTCPeerConnection;
  function RelayOnly(config, ...rest) {
    return new Original({ ...(config || {}), iceTransportPolicy: "relay" }, ...rest);
  }
  RelayOnly.prototype = Original.prototype;
  Object.setPrototypeOf(RelayOnly, Original);
  window.RTCPeerConnection = RelayOnly;
})();
"""


def shot(page, name: str, full_page: bool = True) -> None:
    """A screenshot for a person to look at, in $INCALL_SHOTS (default /tmp/shots; empty: none)."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)


def open_relay_only(browser, url: str, errors: list):
    context = browser.new_context(locale="de-DE", viewport=DESKTOP)
    context.add_init_script(RELAY_ONLY)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page


def meter_samples(page, seconds: float = 3.0) -> list[float]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(page.evaluate("() => document.getElementById('mic-level').value"))
        time.sleep(0.1)
    return samples


def test_level_meter_moves_and_loopback_is_direct(browser, server):
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    page = open_page(browser, room["citizen_url"], DESKTOP, errors)
    # a user gesture, as a person gives one (an AudioContext may wait for it)
    page.get_by_label("Ihr Name").click()

    meter = page.get_by_label("Mikrofonpegel")
    expect(meter).to_be_visible()
    samples = meter_samples(page)
    # Chromium's fake microphone beeps: the bar rises with the beep and falls in the pauses
    assert max(samples) >= 20, samples
    assert min(samples) < max(samples) - 10, samples

    result = page.locator("#network-result")
    expect(result).to_have_text(DIRECT, timeout=15000)
    expect(page.get_by_role("heading", name="Verbindung für Bild und Ton")).to_be_visible()
    expect(page.locator("#network-hint")).to_be_hidden()
    expect(page.get_by_role("button", name="Erneut prüfen")).to_be_hidden()

    shot(page, "h2-prejoin")
    assert not errors, errors
    page.context.close()


def test_network_without_udp_and_without_turn_gets_the_hint(browser, server):
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    page = open_relay_only(browser, room["citizen_url"], errors)
    expect(page.locator("#network-result")).to_contain_text(BLOCKED, timeout=15000)
    hint = page.locator("#network-hint")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("mobile Daten")
    expect(hint).to_contain_text("Port 443")
    retry = page.get_by_role("button", name="Erneut prüfen")
    expect(retry).to_be_visible()
    retry.click()
    expect(page.locator("#network-result")).to_contain_text(BLOCKED, timeout=15000)
    # joining stays possible (the chat works without media)
    expect(page.get_by_role("button", name="Beitreten", exact=True)).to_be_enabled()
    shot(page, "h2-prejoin-hint")
    assert not errors, errors
    page.context.close()


def test_network_with_only_turn_says_through_the_relay(browser, tmp_path, coturn):  # noqa: F811
    from playwright.sync_api import expect

    data = tmp_path / "turn-server"
    data.mkdir()
    with running_server(data, "--turn-url", coturn, "--turn-secret", TURN_SECRET) as turn_server:
        room = create_room(turn_server)
        errors: list[str] = []
        page = open_relay_only(browser, room["citizen_url"], errors)
        expect(page.locator("#network-result")).to_contain_text(RELAY, timeout=15000)
        expect(page.locator("#network-hint")).to_be_hidden()
        assert not errors, errors
        page.context.close()
