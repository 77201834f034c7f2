"""Failover: kill -9 the node hosting a consultation; how long until both people see each other again.

Two real Chromium pages (fake camera, the shipped page and its reconnect logic) in a consultation behind
`sprechstunde serve --workers 2` on Redis: the first process listens publicly and relays `?node=` sockets
to the second (web/core/relay.py), like the reverse proxy of deploy/ does. A busy consultation keeps the
first process loaded, so the pages' room is pinned to the second; with video flowing both ways, that
process is killed with SIGKILL. With `--proxy nginx`, deploy/nginx.conf (TLS, room hashing, ?node=
routing; tests/test_deploy.py renders it with local ports) runs in front of two `serve` processes instead,
and whichever hosts the room is killed. The figure is the time from the kill until *both* pages decode
video on a new peer connection; each run also checks what the people see meanwhile: "Verbindung wird
wiederhergestellt …", the other person's tile and name kept, the same participant ids afterwards
(`resumed`), and no "… ist beigetreten" / "… hat das Gespräch verlassen".

    .venv/bin/python -m bench.failover [--runs 5] [--proxy workers|nginx] [--redis URL] [--json out]

Without a Redis server at --redis (default redis://127.0.0.1:6379/0), Debian's `redis-server` is
started on a free port for the run and stopped afterwards (apt-get install redis-server).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from bench.server import ROOT, ServerProcess, free_port, machine_speed

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
NODE = "stadt"
WORKER = f"{NODE}-w1"
DESKTOP = {"width": 1280, "height": 800}

# In both pages just before the kill: note the peer connection of now, then (every 20 ms) when a newer one
# has decoded a video frame, every text of the status line, and whether the other's tile was ever gone.
WATCH = """
() => {
  const w = { oldPc: window.sprechstunde.pc, decodedAt: null, statuses: [], tileGone: false,
              participantId: window.sprechstunde.participantId };
  window.__failover = w;
  const others = () => [...document.querySelectorAll("#remote-tiles [data-participant-id]")]
    .map((t) => t.dataset.participantId);
  w.othersBefore = others();
  new MutationObserver(() => {
    const text = document.getElementById("status").textContent;
    if (text) w.statuses.push(text);
  }).observe(document.getElementById("status"), { childList: true, characterData: true, subtree: true });
  const poll = async () => {
    const now = others();
    if (w.othersBefore.some((id) => !now.includes(id))) w.tileGone = true;
    const pc = window.sprechstunde.pc;
    if (pc && pc !== w.oldPc) {
      try {
        for (const s of (await pc.getStats()).values()) {
          if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0) {
            w.decodedAt = performance.timeOrigin + performance.now();
            w.participantIdAfter = window.sprechstunde.participantId;
            w.othersAfter = others();
            w.names = [...document.querySelectorAll("#remote-tiles .tile-name .name")]
              .map((n) => n.textContent);
            return;
          }
        }
      } catch (e) { /* replaced during the poll */ }
    }
    setTimeout(poll, 20);
  };
  poll();
  return w.othersBefore;
}
"""


def _redis_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server(url: str = DEFAULT_REDIS) -> Iterator[str]:
    """`url` when a Redis answers there, else a throwaway redis-server on a free port (no persistence)."""
    if _redis_answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(f"no Redis at {url} and no redis-server to start (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sprechstunde-redis-") as directory:
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not _redis_answers(started):
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            yield started
        finally:
            process.terminate()
            process.wait(timeout=10)


def _drop_prefix(url: str, prefix: str) -> None:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def worker_pid(parent: int, node_id: str) -> int:
    """The pid of `serve --workers`' child process running `node_id`."""
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if node_id.encode() in cmdline:
                return int(child)
    raise RuntimeError(f"no worker {node_id} under pid {parent}")


def _create_room(data_dir: Path, base_url: str, redis_args: tuple[str, ...]) -> dict:
    command = [sys.executable, "-m", "sprechstunde", "room", "create", "--office", "vhs",
               "--data-dir", str(data_dir), "--base-url", base_url, *redis_args]  # fmt: skip
    made = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        raise RuntimeError(made.stderr)
    return json.loads(made.stdout)


def _wait_for_nodes(redis_url: str, prefix: str, wanted: list[str], log: ServerProcess) -> None:
    from redis import Redis

    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        deadline = time.monotonic() + 30
        while sorted(client.zrange(f"{prefix}i:node", 0, -1)) != wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nodes {wanted} did not announce themselves:\n{log.log()}")
            time.sleep(0.2)
    finally:
        client.close()


def _pin(redis_url: str, prefix: str, room_id: str) -> str | None:
    from redis import Redis

    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        raw = client.get(f"{prefix}r:room-node:{room_id}")
        return json.loads(raw)["v"]["node"] if raw else None
    finally:
        client.close()


def one_run(
    browser,
    redis_url: str,
    workdir: Path,
    *,
    proxy: str = "workers",
    timeout: float = 30.0,
    chat: bool = False,
) -> dict:
    """One consultation, one kill; the figures and what the pages showed (see the module's docstring).
    `proxy`: "workers" (`serve --workers 2`, its first process relaying) or "nginx" (deploy/nginx.conf
    with TLS in front of two `serve` processes, as the deployment runs). `chat`: the citizen writes a
    message just before the kill, which the store has not taken (Redis's writes paused for 1.5 s, which
    also holds up the move: not for the timing figure); `run["chat"]` says where it is afterwards."""
    prefix = f"sprechstunde-failover-{secrets.token_hex(4)}:"
    redis_args = ("--redis", redis_url, "--redis-prefix", prefix)
    setup = _behind_workers if proxy == "workers" else _behind_nginx
    errors: list[str] = []
    try:
        with contextlib.ExitStack() as stack:
            run = setup(stack, browser, redis_url, prefix, redis_args, workdir, timeout, errors, chat)
        return run | {"proxy": proxy, "page_errors": errors}
    finally:
        _drop_prefix(redis_url, prefix)


def _behind_workers(stack, browser, redis_url, prefix, redis_args, workdir, timeout, errors, chat) -> dict:
    data_dir = workdir / "data"
    server = stack.enter_context(
        ServerProcess(
            data_dir, *redis_args, "--workers", "2", "--node-id", NODE, log_path=workdir / "serve.log"
        )
    )
    server.wait_healthy()
    _wait_for_nodes(redis_url, prefix, [NODE, WORKER], server)
    busy_room = _create_room(data_dir, server.url, redis_args)
    room = _create_room(data_dir, server.url, redis_args)
    # two signaling-only participants keep the first process busier, so the call goes to the worker
    busy = _open_page(stack, browser, busy_room["citizen_url"], errors)
    busy.evaluate(
        """(tokens) => { window.busy = tokens.map((token) => {
             const ws = new WebSocket(`ws://${location.host}/ws`);
             const hello = {type: "hello", id: 1, v: 1, token, name: "X", media: false};
             ws.onopen = () => ws.send(JSON.stringify(hello));
             return ws; }); }""",
        [busy_room[f"{role}_url"].rsplit("/join/", 1)[1] for role in ("citizen", "advisor")],
    )
    busy.wait_for_function("() => window.busy.every((ws) => ws.readyState === WebSocket.OPEN)")
    time.sleep(2.5)  # a heartbeat later the registry shows the first process's load
    citizen, advisor = _in_call(stack, browser, room, timeout, errors)
    host = _pin(redis_url, prefix, room["room_id"])
    if host != WORKER:
        raise RuntimeError(f"the consultation runs on {host}, not on the worker")
    victim = worker_pid(server.pid, WORKER)
    return _kill_and_watch(citizen, advisor, victim, redis_url, prefix, room, NODE, timeout, chat)


def _behind_nginx(stack, browser, redis_url, prefix, redis_args, workdir, timeout, errors, chat) -> dict:
    from tests.test_deploy import render_nginx, tool

    nginx = tool("nginx", "nginx")
    data_dir = workdir / "data"
    http_port, https_port = free_port(), free_port()
    base = f"https://127.0.0.1:{https_port}"
    node_args = ("--trusted-proxy", "127.0.0.1", "--base-url", base, *redis_args)
    nodes = {
        name: stack.enter_context(
            ServerProcess(data_dir, *node_args, "--node-id", name, log_path=workdir / f"{name}.log")
        )
        for name in ("node1", "node2")  # the node ids deploy/nginx.conf routes ?node= by
    }
    for node in nodes.values():
        node.wait_healthy()
    _wait_for_nodes(redis_url, prefix, sorted(nodes), nodes["node1"])
    config = render_nginx(workdir, http_port, https_port, [nodes["node1"].port, nodes["node2"].port])
    errors = open(workdir / "nginx.err", "wb")
    stack.callback(errors.close)
    server = subprocess.Popen(
        [nginx, "-c", str(config), "-p", f"{workdir}/", "-e", "stderr", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True,
    )  # fmt: skip
    stack.callback(_stop, server)
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    insecure.set_alpn_protocols(["http/1.1"])  # without ALPN nginx's port 443 takes it for TURN over TLS
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1, context=insecure) as response:
                if response.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError((workdir / "nginx.err").read_text()) from None
            time.sleep(0.1)
    room = _create_room(data_dir, base, redis_args)
    citizen, advisor = _in_call(stack, browser, room, timeout, errors)
    host = _pin(redis_url, prefix, room["room_id"])
    survivor = next(name for name in nodes if name != host)
    return _kill_and_watch(
        citizen, advisor, nodes[host].pid, redis_url, prefix, room, survivor, timeout, chat
    )


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _open_page(stack: contextlib.ExitStack, browser, url: str, errors: list[str]):
    """A German page of the shipped client with its fake camera showing (self-signed TLS accepted)."""
    context = browser.new_context(locale="de-DE", viewport=DESKTOP, ignore_https_errors=True)
    stack.callback(context.close)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{url[-12:]}: {error}"))
    page.goto(url)
    page.wait_for_function("() => document.getElementById('preview-video').videoWidth > 0", timeout=15000)
    return page


def _in_call(stack: contextlib.ExitStack, browser, room: dict, timeout: float, errors: list[str]) -> tuple:
    from tests.browser_support import join_call

    citizen = _open_page(stack, browser, room["citizen_url"], errors)
    advisor = _open_page(stack, browser, room["advisor_url"], errors)
    join_call(citizen, advisor)
    for page in (citizen, advisor):
        _wait_video(page, timeout)
    time.sleep(1.0)  # media flowing both ways for a moment
    return citizen, advisor


def _kill_and_watch(
    citizen, advisor, victim: int, redis_url, prefix, room, survivor, timeout, chat=False
) -> dict:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for page in (citizen, advisor):
        page.evaluate(WATCH)
    said = _chat_not_stored(citizen, advisor, redis_url) if chat else None
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)
    results = {}
    for name, page in (("citizen", citizen), ("advisor", advisor)):
        remaining = max(0.1, killed_at + timeout - time.time())
        with contextlib.suppress(PlaywrightTimeout):  # never: recorded as such
            page.wait_for_function(
                "() => window.__failover.decodedAt !== null", timeout=remaining * 1000, polling=50
            )
        results[name] = page.evaluate(
            """() => { const w = window.__failover; return {decodedAt: w.decodedAt,
                 state: window.sprechstunde.state,
                 statuses: w.statuses, tileGone: w.tileGone, participantId: w.participantId,
                 participantIdAfter: w.participantIdAfter, othersBefore: w.othersBefore,
                 othersAfter: w.othersAfter, names: w.names}; }"""
        )
    seconds = {
        name: None if r["decodedAt"] is None else round(r["decodedAt"] / 1000 - killed_at, 3)
        for name, r in results.items()
    }
    if said is not None:
        said |= _chat_afterwards(citizen, advisor, redis_url, prefix, room["room_id"], said["text"], timeout)
    return {
        "chat": said,
        # None: at least one page had no video again within `timeout`
        "seconds": None if None in seconds.values() else max(seconds.values()),
        "per_page": seconds,
        "moved_to": _pin(redis_url, prefix, room["room_id"]),
        "survivor": survivor,
        "pages": results,
    }


CHAT_TEXT = "Kurz vor dem Ausfall geschrieben"
COUNT_SHOWN = """(text) => [...document.querySelectorAll('#chat-log .chat-text')]
    .filter((node) => node.textContent === text).length"""


def _chat_not_stored(citizen, advisor, redis_url: str) -> dict:
    """The citizen sends a chat message while the store takes no write: the advisor sees it live, the
    citizen's page shows it as not yet kept."""
    from redis import Redis

    client = Redis.from_url(redis_url)
    try:
        client.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
    finally:
        client.close()
    citizen.fill("#chat-input", CHAT_TEXT)
    citizen.press("#chat-input", "Enter")
    advisor.wait_for_function(f"({COUNT_SHOWN})({json.dumps(CHAT_TEXT)}) === 1", timeout=5000)
    pending = citizen.evaluate("() => document.querySelectorAll('#chat-log .chat-message.pending').length")
    return {"text": CHAT_TEXT, "pending_before_kill": pending}


def _chat_afterwards(
    citizen, advisor, redis_url: str, prefix: str, room_id: str, text: str, timeout: float
) -> dict:
    """Once the citizen's page has its message acknowledged: how often each page shows it and the
    store keeps it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from redis import Redis

    with contextlib.suppress(PlaywrightTimeout):  # never: the counts below say so
        citizen.wait_for_function(
            "() => !document.querySelector('#chat-log .chat-message.pending')", timeout=timeout * 1000
        )
    shown = {
        name: page.evaluate(COUNT_SHOWN, text) for name, page in (("citizen", citizen), ("advisor", advisor))
    }
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        raw = client.get(f"{prefix}r:chat-history:{room_id}")
    finally:
        client.close()
    messages = json.loads(raw)["v"]["messages"] if raw else []
    return {
        "pending_after": citizen.evaluate(
            "() => document.querySelectorAll('#chat-log .chat-message.pending').length"
        ),
        "shown": shown,
        "stored": [m["text"] for m in messages].count(text),
    }


def _wait_video(page, timeout: float) -> None:
    from tests.browser_support import wait_for_decoded_video

    wait_for_decoded_video(page, frames=5, timeout=timeout)


def check(run: dict) -> list[str]:
    """What a person must not see during the move (empty: all well)."""
    problems = []
    for name, page in run["pages"].items():
        if page["decodedAt"] is None:
            problems.append(f"{name}: no video again (page state {page['state']!r})")
            continue
        if page["participantIdAfter"] != page["participantId"]:
            problems.append(f"{name}: a new participant id (not resumed)")
        if page["othersAfter"] != page["othersBefore"]:
            problems.append(f"{name}: the other person came back as someone else {page['othersAfter']}")
        if page["tileGone"]:
            problems.append(f"{name}: the other person's tile disappeared")
        if not any("wiederhergestellt" in text for text in page["statuses"]):
            problems.append(f"{name}: no 'Verbindung wird wiederhergestellt' shown: {page['statuses']}")
        strangers = [
            t for t in page["statuses"] if "beigetreten" in t or "verlassen" in t or "abgebrochen" in t
        ]
        if strangers:
            problems.append(f"{name}: showed {strangers}")
    if run["moved_to"] != run["survivor"]:
        problems.append(f"the room is pinned to {run['moved_to']}, not to the surviving {run['survivor']}")
    return problems


def _seconds(value: float | None) -> str:
    return "never" if value is None or math.isinf(value) else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="kills, each in a fresh pair of processes [5]")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help=f"Redis URL [{DEFAULT_REDIS}]")
    parser.add_argument(
        "--proxy",
        choices=("workers", "nginx"),
        default="workers",
        help="what is in front: `serve --workers 2`, or deploy/nginx.conf with two `serve` [workers]",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file too")
    args = parser.parse_args()
    from tests.browser_support import launched_browser

    speed = machine_speed()
    runs = []
    with redis_server(args.redis) as redis_url, launched_browser() as browser:
        for number in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory(prefix="sprechstunde-failover-") as tmp:
                run = one_run(browser, redis_url, Path(tmp), proxy=args.proxy)
            problems = check(run)
            runs.append(run | {"problems": problems})
            each = ", ".join(f"{name} {_seconds(value)}" for name, value in run["per_page"].items())
            print(
                f"run {number}: both pages decode video again {_seconds(run['seconds'])} after kill -9 "
                f"({each})" + ("" if not problems else f"; PROBLEMS: {'; '.join(problems)}"),
                flush=True,
            )
    figures = [math.inf if r["seconds"] is None else r["seconds"] for r in runs]
    median = statistics.median(figures)
    print(
        f"failover behind {args.proxy} (kill -9 of the hosting node, {len(runs)} runs): "
        f"median {_seconds(median)}, min {_seconds(min(figures))}, max {_seconds(max(figures))} "
        "until both pages decode video again"
    )
    if args.json:
        median_seconds = None if math.isinf(median) else median
        figures = {"median_seconds": median_seconds, "machine_speed_seconds": speed, "runs": runs}
        args.json.write_text(json.dumps(figures, indent=2))
    if any(r["problems"] for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
