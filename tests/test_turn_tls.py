"""TURN over TLS on the HTTPS port (issue 17, item 13): networks that open nothing but 443.

deploy/nginx.conf's `stream` block listens on 443, reads each TLS ClientHello's ALPN (ssl_preread) and
passes HTTP clients to the https server and everything else to coturn's TLS listener. Here everything is a
real process: that config (test-local port instead of 443, as tests/test_deploy.py renders it), coturn
with deploy/turnserver.conf and a self-signed certificate made now, `sprechstunde serve` offering only
`--turn-tls-url turns:localhost:<port>?transport=tcp`, and two Debian Chromium pages loaded from that same
port that may use relay candidates only. Chromium refuses a TURN server certificate it does not trust
(error 701); the test trusts exactly this one certificate with --ignore-certificate-errors-spki-list.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bench.server import ServerProcess, free_port, free_udp_and_tcp_port, free_udp_port
from sprechstunde.media.ice import tls_turn_url
from tests.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    MOBILE,
    assert_media_flows,
    create_room,
    join_call,
    open_page,
    screenshot,
)
from tests.test_deploy import DEPLOY, render_nginx, tool
from tests.test_turn import wait_for_stun

pytestmark = pytest.mark.browser

SECRET = "turn-tls-secret-of-the-test"

# Installed before "Beitreten": every RTCPeerConnection the call page makes may gather relay candidates
# only (iceTransportPolicy "relay"), and the configuration the page passes is kept for the assertions.
RELAY_ONLY = """
() => {
  const Native = window.RTCPeerConnection;
  window.__iceConfigs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) {
      window.__iceConfigs.push(JSON.parse(JSON.stringify(config || {})));
      super({ ...(config || {}), iceTransportPolicy: "relay" }, ...rest);
    }
  };
}
"""

# The selected candidate pair of the call's connection and the video decoded so far.
SELECTED_PAIR = """
async () => {
  const stats = new Map();
  (await window.sprechstunde.pc.getStats()).forEach((s) => stats.set(s.id, s));
  const transport = [...stats.values()].find((s) => s.type === "transport" && s.selectedCandidatePairId);
  const pair = transport && stats.get(transport.selectedCandidatePairId);
  const local = pair && stats.get(pair.localCandidateId);
  const remote = pair && stats.get(pair.remoteCandidateId);
  const video = [...stats.values()].filter((s) => s.type === "inbound-rtp" && s.kind === "video");
  return {
    state: pair ? pair.state : null,
    localType: local ? local.candidateType : null,
    relayProtocol: local ? local.relayProtocol : null,
    url: local ? local.url : null,
    remote: remote ? `${remote.candidateType} ${remote.address}:${remote.port}` : null,
    framesDecoded: video.reduce((sum, s) => sum + (s.framesDecoded || 0), 0),
  };
}
"""

# Relay candidates gathered with these ICE servers, and the errors Chromium reports, within 10 s.
GATHER = """
async (iceServers) => {
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: "relay" });
  const found = { candidates: [], errors: [] };
  pc.onicecandidate = (e) => e.candidate && found.candidates.push(e.candidate.candidate);
  pc.onicecandidateerror = (e) => found.errors.push(e.errorCode);
  pc.createDataChannel("probe");
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
    setTimeout(done, 10000);
  });
  pc.close();
  return found;
}
"""

# A box over the call page with that summary, for the screenshot.
SHOW_SUMMARY = """
(summary) => {
  const box = document.createElement("pre");
  box.style.cssText = "position:fixed;right:8px;bottom:8px;z-index:9999;margin:0;padding:8px 10px;" +
    "background:#1b1b1b;color:#fff;font:13px/1.4 monospace;border-radius:6px;white-space:pre-wrap";
  box.textContent = "getStats(), selected candidate pair\\n" + Object.entries(summary)
    .map(([key, value]) => `${key}: ${value}`).join("\\n");
  document.body.append(box);
}
"""


def spki_sha256(certificate: Path) -> str:
    """What --ignore-certificate-errors-spki-list takes: base64(SHA-256(SubjectPublicKeyInfo))."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def start_coturn(tmp_path: Path, tls_port: int) -> subprocess.Popen:
    """coturn with deploy/turnserver.conf; only addresses, ports and files are the test's. The relay may
    reach the media server on 127.0.0.1, which the shipped config denies (allowed-peer-ip wins)."""
    binary = tool("turnserver", "coturn")
    # coturn binds its listening port on UDP and TCP and its TLS port on TCP and UDP (DTLS): the ports the
    # kernel hands out for one protocol may be the other's, so keep them and the relay range apart
    port = free_udp_and_tcp_port(avoid=(tls_port, tls_port + 1))
    relay = min(free_udp_port() // 2 * 2, 65000)
    while relay <= max(port, tls_port) <= relay + 40 or relay <= min(port, tls_port) <= relay + 40:
        relay = min(free_udp_port() // 2 * 2, 65000)
    certs = tmp_path / "certs"
    command = [
        binary, "-c", str(DEPLOY / "turnserver.conf"),
        f"--static-auth-secret={SECRET}", "--realm=video.stadt.test",
        "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
        f"--listening-port={port}", f"--tls-listening-port={tls_port}",
        f"--min-port={relay}", f"--max-port={relay + 40}",
        "--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1",
        f"--cert={certs / 'fullchain.pem'}", f"--pkey={certs / 'privkey.pem'}",
        f"--pidfile={tmp_path / 'turn.pid'}", "--log-file=stdout",
    ]  # fmt: skip
    log = tmp_path / "turn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_stun(port, process, log)
    return process


def start_nginx(tmp_path: Path, port: int, node: int, turn_tls: int) -> subprocess.Popen:
    """deploy/nginx.conf on `port` instead of 443, plus a stream access log of the routing decisions."""
    nginx = tool("nginx", "nginx")
    config = render_nginx(tmp_path, free_port(), port, [node, node], turn_tls=turn_tls)
    text = config.read_text()
    routes = (
        "log_format routes '$ssl_preread_alpn_protocols|$ssl_preread_server_name|$upstream_addr';\n"
        f"    access_log {tmp_path}/stream.log routes;\n"
    )
    config.write_text(text.replace("\nstream {\n", "\nstream {\n    " + routes, 1))
    proxy = subprocess.Popen(
        [nginx, "-c", str(config), "-p", f"{tmp_path}/", "-e", "stderr", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "nginx.err", "wb"), start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not (tmp_path / "https.sock").exists() or not (tmp_path / "turns.sock").exists():
        assert proxy.poll() is None, (tmp_path / "nginx.err").read_text()
        assert time.monotonic() < deadline, "nginx did not listen"
        time.sleep(0.1)
    return proxy


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


def test_turn_tls_url_setting_takes_only_turns_over_tcp():
    assert tls_turn_url("turns:video.stadt.de:443?transport=tcp") == "turns:video.stadt.de:443?transport=tcp"
    for wrong in ("turn:video.stadt.de:3478", "turns:video.stadt.de:443?transport=udp", "turns:", "x"):
        with pytest.raises(Exception, match="is not a turns:"):
            tls_turn_url(wrong)


def test_relay_only_call_through_turn_over_tls_on_the_https_port(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./run test installs it)")
    from playwright.sync_api import sync_playwright

    port = free_port()
    turn_tls = free_udp_and_tcp_port(avoid=(port,))  # coturn's TLS port: TCP, and UDP for DTLS
    base = f"https://localhost:{port}"
    turns = f"turns:localhost:{port}?transport=tcp"
    data = tmp_path / "data"
    data.mkdir()
    server = ServerProcess(
        data, "--base-url", base, "--trusted-proxy", "127.0.0.1", "--turn-tls-url", turns,
        "--turn-secret", SECRET, log_path=tmp_path / "server.log",
    )  # fmt: skip
    proxy = coturn = None
    try:
        server.wait_healthy(timeout=30)
        proxy = start_nginx(tmp_path, port, server.port, turn_tls)  # writes the certificate coturn reads
        coturn = start_coturn(tmp_path, turn_tls)
        room = create_room({"data_dir": data}, base)
        spki = spki_sha256(tmp_path / "certs" / "fullchain.pem")
        flags = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki}"]
        errors: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
            try:
                # both pages come over HTTPS from the port that also carries TURN
                citizen = open_page(browser, room["citizen_url"], MOBILE, errors)
                advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
                for page in (citizen, advisor):
                    page.evaluate(RELAY_ONLY)
                join_call(citizen, advisor)
                pages = {"citizen": citizen, "advisor": advisor}
                deadline = time.monotonic() + 30
                summaries = {}
                for name, page in pages.items():
                    while (summary := page.evaluate(SELECTED_PAIR))["framesDecoded"] == 0:
                        assert time.monotonic() < deadline, (name, summary, errors)
                        time.sleep(0.2)
                    summaries[name] = summary
                assert_media_flows(pages)
                for name, page in pages.items():
                    offered = page.evaluate("() => window.__iceConfigs")
                    servers = offered[-1]["iceServers"]
                    assert [s["urls"] for s in servers] == [[turns]], (name, servers)  # nothing else
                    assert servers[0]["username"] and servers[0]["credential"], servers
                    summary = page.evaluate(SELECTED_PAIR)
                    assert summary["state"] == "succeeded", (name, summary)
                    assert summary["localType"] == "relay", (name, summary)
                    assert summary["relayProtocol"] == "tls", (name, summary)
                    assert summary["url"] == turns, (name, summary)
                    summaries[name] = summary
                advisor.evaluate(SHOW_SUMMARY, summaries["advisor"])
                screenshot(advisor, "turn-tls")
                assert not errors, errors
            finally:
                browser.close()
            # without trusting the certificate, Chromium's TURN client refuses the TLS connection (701)
            untrusting = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                refused = untrusting.new_page().evaluate(GATHER, offered[-1]["iceServers"])
            finally:
                untrusting.close()
            assert refused["candidates"] == [] and 701 in refused["errors"], refused
    finally:
        for process in (proxy, coturn):
            if process is not None:
                stop(process)
        server.stop()
    # nginx's routing: the pages' HTTPS offered h2/http/1.1 and went to the https server, Chromium's TURN
    # client offered no ALPN and went to coturn (through the hop that drops the PROXY header)
    routes = [line.split("|") for line in (tmp_path / "stream.log").read_text().splitlines()]
    https_routes = [r for r in routes if r[2].endswith("https.sock")]
    turn_routes = [r for r in routes if r[2].endswith("turns.sock")]
    assert https_routes and all("http/1.1" in alpn for alpn, _, _ in https_routes), routes
    assert turn_routes and all(alpn in ("", "stun.turn") for alpn, _, _ in turn_routes), routes
