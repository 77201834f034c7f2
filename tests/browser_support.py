"""Shared by the real-browser tests and the tests that run the server as a real process.

Starts `sprechstunde serve` in a subprocess and drives Debian's /usr/bin/chromium with Playwright (never
`playwright install`). The `browser` and `server` fixtures in tests/conftest.py are built from these.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MOBILE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

# wait_for_function() gets arrow functions: a bare expression would be eval()ed, which the page's CSP
# (script-src 'self', no 'unsafe-eval') forbids — and the test must run under the real CSP.
# Installed in every page before the client runs: measures click on "Beitreten" → first decoded remote frame.
PROBE = """
window.__probe = { t0: null, firstFrameMs: null };
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("#join-button") : null;
  if (!button || window.__probe.t0 !== null) return;
  window.__probe.t0 = performance.now();
  const poll = async () => {
    const pc = window.sprechstunde && window.sprechstunde.pc;
    try {
      if (pc) {
        for (const s of (await pc.getStats()).values()) {
          if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0) {
            window.__probe.firstFrameMs = performance.now() - window.__probe.t0;
            return;
          }
        }
      }
    } catch (e) { /* a connection replaced during the poll */ }
    setTimeout(poll, 15);
  };
  poll();
}, true);
"""

MEDIA_STATS = """
async () => {
  const out = { frames: 0, packets: 0, width: 0 };
  const pc = window.sprechstunde.pc;
  for (const s of (await pc.getStats()).values()) {
    if (s.type !== "inbound-rtp") continue;
    if (s.kind === "video") out.frames += s.framesDecoded || 0;
    if (s.kind === "audio") out.packets += s.packetsReceived || 0;
  }
  for (const video of document.querySelectorAll("#remote-tiles .tile video")) {
    out.width = Math.max(out.width, video.videoWidth);
  }
  return out;
}
"""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI is set, so this is an error rather than a skip)")
    pytest.skip(reason)


@contextlib.contextmanager
def launched_browser() -> Iterator:
    """Headless Debian chromium with fake camera/microphone; skipped (failed under CI) when missing."""
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@contextlib.contextmanager
def running_server(data_dir: Path, *extra_args: str) -> Iterator[dict]:
    """`sprechstunde serve` in a subprocess on a free port, until the block ends."""
    server = ServerProcess(data_dir, *extra_args, log_path=data_dir / "server.log")
    try:
        try:
            server.wait_healthy(timeout=15)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield {
            "base_url": server.url, "port": server.port, "data_dir": data_dir,
            "log": server.log_path, "process": server.proc,
        }  # fmt: skip
    finally:
        server.stop()
        if "Traceback" in server.log():
            print(f"--- server log ---\n{server.log()}")


class TcpProxy:
    """Forwards a local port to the server; drop() cuts every connection at once without a WebSocket
    close frame, which the browser sees as a lost network (close code 1006). Media (UDP) does not
    pass through it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.refusing = threading.Event()  # set: new connections are closed at once (the network away)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                if self.refusing.is_set():
                    client.close()
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                if self.listener.fileno() == -1:
                    return
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def drop(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump threads blocked in recv()
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.drop()


def add_staff(
    data_dir: Path, username: str, password: str, office: str, language: str = "de", role: str = "advisor"
) -> None:
    """A staff account in `data_dir`, through the real CLI (as an operator adds one)."""
    command = [
        sys.executable, "-m", "sprechstunde", "user", "add", username, "--office", office,
        "--language", language, "--role", role, "--password-stdin", "--data-dir", str(data_dir),
    ]  # fmt: skip
    subprocess.run(command, cwd=ROOT, input=password + "\n", text=True, check=True, timeout=30,
                   capture_output=True)  # fmt: skip


def sign_in(page, base_url: str, username: str, password: str) -> None:
    """Log a staff member in through the login form, as a person would, and wait for their console."""
    page.goto(base_url + "/login")
    page.get_by_label("Benutzername").fill(username)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()
    page.wait_for_url("**/console")


def create_room(server, base_url: str | None = None) -> dict:
    command = [sys.executable, "-m", "sprechstunde", "room", "create", "--office", "vhs"]
    command += ["--data-dir", str(server["data_dir"]), "--base-url", base_url or server["base_url"]]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    return json.loads(result.stdout)


def open_page(browser, url: str, viewport: dict, errors: list):
    context = browser.new_context(locale="de-DE", viewport=viewport)
    context.add_init_script(PROBE)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{url[-12:]}: {error}"))
    page.goto(url)
    # The pre-join preview shows the (fake) camera before anyone joins.
    page.wait_for_function("() => document.getElementById('preview-video').videoWidth > 0", timeout=10000)
    return page


def media_stats(page) -> dict:
    return page.evaluate(MEDIA_STATS)


def wait_for_decoded_video(page, frames: int = 1, timeout: float = 20.0) -> None:
    """Until the current peer connection has decoded `frames` remote video frames. Polled from Python:
    wait_for_function would take the promise of an async predicate as a truthy answer at once."""
    deadline = time.monotonic() + timeout
    while media_stats(page)["frames"] < frames:
        assert time.monotonic() < deadline, "no remote video frame decoded"
        time.sleep(0.2)


def assert_media_flows(pages: dict) -> dict:
    """Remote video frames keep being decoded for 2 s and remote audio arrives, on every page."""
    before = {name: media_stats(page) for name, page in pages.items()}
    time.sleep(2)
    after = {name: media_stats(page) for name, page in pages.items()}
    for name in pages:
        assert after[name]["frames"] > before[name]["frames"], (name, before[name], after[name])
        assert after[name]["packets"] > 0, (name, after[name])
        assert after[name]["width"] > 0, (name, after[name])
    return {name: after[name]["frames"] - before[name]["frames"] for name in pages}


def join_call(citizen, advisor) -> None:
    citizen.get_by_label("Ihr Name").fill("Frau Yılmaz")
    citizen.get_by_role("button", name="Beitreten", exact=True).click()
    advisor.get_by_role("button", name="Beitreten", exact=True).click()
    for page in (citizen, advisor):
        page.wait_for_function("() => window.sprechstunde.state === 'in-call'", timeout=10000)


def screenshot(page, name: str) -> None:
    directory = os.environ.get("SPRECHSTUNDE_SCREENSHOTS")
    if directory:
        page.screenshot(path=str(Path(directory) / f"shot-{name}.png"), full_page=True)


def guest_url(server, room: dict) -> str:
    """An interpreter's link to the room, as the advisor's call page hands out (role "guest")."""
    from sprechstunde.rooms.tokens import TokenSigner
    from sprechstunde.web.core.config import prepare_data_dir

    signer = TokenSigner(prepare_data_dir(server["data_dir"]))
    base, token = room["citizen_url"].rsplit("/join/", 1)
    grant = signer.verify_join(token)
    return f"{base}/join/{signer.join_token(grant.room_id, 'guest', grant.expires_at)}"
