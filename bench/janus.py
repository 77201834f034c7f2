"""Janus WebRTC Server as the media benchmark's reference peer: the same consultations, the same load
clients, the same core, measured the same way (server CPU from /proc over the same window).

Janus (Debian package `janus`, C, the videoroom plugin) is a mature SFU; how Sprechstunde's Python
forwarding compares with it per consultation is a figure that carries over between machines, unlike
the absolute cores. The benchmark writes Janus's configuration into a temporary folder (the videoroom
plugin and the WebSocket transport only, the API on 127.0.0.1, no STUN/TURN, no NAT mapping), starts it
pinned to the server core and stops it after the run; nothing in /etc/janus is read.

Janus never gathers ICE candidates on a loopback interface (src/ice.c skips IFF_LOOPBACK), so its media
runs on the machine's own IPv4 address instead of 127.0.0.1, with the load clients announcing the same
address: the kernel delivers traffic to a local address over `lo` all the same, so the path (and its
cost) is the one our server's media takes.

A consultation in Janus is a videoroom room with the two participants as publishers, each also
subscribed to the other's feed: per participant one sending and one receiving peer connection, as every
videoroom client has, where Sprechstunde has one bundled connection for both directions.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.clip import Clip
from bench.janus_client import JANUS_PROTOCOL, JanusParticipant, JanusSession
from bench.loadclient import collect_results, start_clients, stop_clients
from bench.server import PinnedProcess, free_port

LIB_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu/janus"),
    Path("/usr/lib/aarch64-linux-gnu/janus"),
    Path("/usr/lib/janus"),
)
PLUGIN = "libjanus_videoroom.so"
TRANSPORT = "libjanus_websockets.so"
INSTALL_HINT = (
    "Janus WebRTC Server (the reference) is not installed: `./run bench` installs Debian's `janus` and runs "
    "the benchmark, or `apt-get install janus`; `--reference none` measures Sprechstunde alone"
)
ROOM_BITRATE = 2_000_000  # the REMB cap Janus sends publishers: above the clip's rate, as our server's
START_TIMEOUT = 20.0


def find_janus() -> Path | None:
    """The `janus` binary (Debian installs /usr/bin/janus), or None."""
    found = shutil.which("janus") or shutil.which("janus", path="/usr/bin:/usr/local/bin:/opt/janus/bin")
    return Path(found) if found else None


def find_modules(lib_dirs: tuple[Path, ...] = LIB_DIRS) -> Path | None:
    """The folder holding Janus's plugins/ and transports/ (the package's multiarch path), or None."""
    for folder in lib_dirs:
        if (folder / "plugins" / PLUGIN).exists() and (folder / "transports" / TRANSPORT).exists():
            return folder
    return None


def media_address() -> str:
    """The machine's own IPv4 address for Janus's media (see the module's docstring): the first global
    address of an interface that is up, checked to be routed locally (over lo)."""
    ip = shutil.which("ip")
    if ip is None:
        raise RuntimeError("the Janus reference needs `ip` (iproute2) to find the machine's own address")
    listing = subprocess.run(
        [ip, "-4", "-o", "addr", "show", "up", "scope", "global"], capture_output=True, text=True
    )
    for line in listing.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            address = fields[fields.index("inet") + 1].split("/")[0]
            route = subprocess.run([ip, "route", "get", address], capture_output=True, text=True).stdout
            if route.startswith("local ") and " dev lo " in route:
                return address
    raise RuntimeError(
        "no IPv4 address besides 127.0.0.1 to run Janus's media on (Janus does not use loopback interfaces)"
    )


def _jcfg(sections: dict[str, dict[str, Any]]) -> str:
    """Janus's libconfig-style .jcfg text: `name: { key = value }` per section."""

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int):
            return str(item)
        return json.dumps(str(item))

    lines = []
    for name, entries in sections.items():
        lines.append(f"{name}: {{")
        lines.extend(f"\t{key} = {value(item)}" for key, item in entries.items())
        lines.append("}")
    return "\n".join(lines) + "\n"


def write_config(folder: Path, ws_port: int, modules: Path, address: str, debug_level: int = 3) -> Path:
    """Janus's configuration in `folder` (its -F): the core, the videoroom plugin and the WebSocket
    transport on 127.0.0.1:`ws_port`. plugins/ and transports/ hold links to the two modules only, so
    Janus loads nothing else; ICE gathers on `address` only (media_address()), without STUN, TURN or
    NAT settings, so that it announces one candidate the load clients reach. Returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, name in (("plugins", PLUGIN), ("transports", TRANSPORT)):
        (folder / kind).mkdir(exist_ok=True)
        link = folder / kind / name
        if not link.exists():
            link.symlink_to(modules / kind / name)
    for empty in ("events", "loggers"):
        (folder / empty).mkdir(exist_ok=True)
    core = {
        "general": {
            "configs_folder": str(folder),
            "plugins_folder": str(folder / "plugins"),
            "transports_folder": str(folder / "transports"),
            "events_folder": str(folder / "events"),
            "loggers_folder": str(folder / "loggers"),
            "debug_level": debug_level,
            "debug_colors": False,
            "admin_secret": secrets.token_hex(16),  # no admin API is enabled; no default secret either
            "server_name": "sprechstunde-bench-reference",
            "session_timeout": 60,
            "hide_dependencies": True,
        },
        "certificates": {},
        "media": {},
        "nat": {"nice_debug": False, "ice_enforce_list": address, "ignore_mdns": True},
        "plugins": {},
        "transports": {},
        "loggers": {},
        "events": {},
    }
    (folder / "janus.jcfg").write_text(_jcfg(core))
    (folder / "janus.plugin.videoroom.jcfg").write_text(_jcfg({"general": {}}))
    websockets = {
        "general": {"json": "compact", "ws": True, "ws_port": ws_port, "ws_ip": "127.0.0.1", "wss": False},
        "admin": {"admin_ws": False, "admin_wss": False},
    }
    (folder / "janus.transport.websockets.jcfg").write_text(_jcfg(websockets))
    return folder


class JanusProcess(PinnedProcess):
    """Janus with a configuration written for this run, optionally pinned to one core; its threads
    inherit the affinity, so /proc/<pid>/stat counts all of its work there."""

    def __init__(
        self, binary: Path, modules: Path, folder: Path, log_path: Path, cpu: int | None, address: str
    ) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.address = address
        write_config(folder, self.port, modules, address)
        super().__init__([str(binary), "-F", str(folder)], log_path=log_path, cpu=cpu, cwd=folder)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the WebSocket API answers `info` with the videoroom plugin loaded (Janus has no
        /healthz). SIGINT stops it, as Janus's own Ctrl-C handling expects (`PinnedProcess.stop`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                info = asyncio.run(_info(self.url))
            except (TimeoutError, OSError, aiohttp.ClientError):
                time.sleep(0.2)
                continue
            if "janus.plugin.videoroom" not in info.get("plugins", {}):
                raise RuntimeError(f"janus runs without the videoroom plugin:\n{self.log()}")
            return
        raise RuntimeError(f"janus did not answer on {self.url} within {timeout} s:\n{self.log()}")


async def _info(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(
            url, protocols=(JANUS_PROTOCOL,), timeout=aiohttp.ClientWSTimeout(2)
        ) as ws:
            await ws.send_json({"janus": "info", "transaction": "info"})
            reply = await asyncio.wait_for(ws.receive_json(), 2)
            return reply


async def create_rooms(url: str, count: int) -> list[int]:
    """`count` videoroom rooms for two publishers each (VP8 and Opus, as the clip), made before the
    participants come as the `room create` calls do for our server."""
    async with aiohttp.ClientSession() as http:
        janus = JanusSession(http, url)
        await janus.open()
        try:
            handle = await janus.attach()
            rooms = []
            for _ in range(count):
                reply = await janus.request(
                    handle,
                    {
                        "request": "create",
                        "publishers": 3,
                        "bitrate": ROOM_BITRATE,
                        "audiocodec": "opus",
                        "videocodec": "vp8",
                        "notify_joining": False,
                    },
                )
                rooms.append(int(reply["room"]))
            return rooms
        finally:
            await janus.close()


def assign(rooms: list[int], processes: int, pair_gap: float, stagger: float) -> list[list[dict[str, Any]]]:
    """Participants round-robin over the client processes as for our server: a citizen and its advisor
    apart, consultation i joining at i × stagger."""
    groups: list[list[dict[str, Any]]] = [[] for _ in range(processes)]
    index = 0
    for number, room in enumerate(rooms):
        for offset, role in enumerate(("citizen", "advisor")):
            groups[index % processes].append(
                {
                    "name": f"{role}-{number}",
                    "consultation": number,
                    "role": role,
                    "room": room,
                    "join_at": number * stagger + offset * pair_gap,
                }
            )
            index += 1
    return groups


def run_janus_case(n: int, clip: Clip, plan: Any, results: Path) -> dict:
    """N consultations through one Janus on the server core, with media_relay's timing (`plan`: its
    Plan) and figures; the raw dict has the same keys as media_relay.run_case's, mode "janus"."""
    from bench import media_relay as bench  # the Sprechstunde side's measuring helpers

    binary, modules = find_janus(), find_modules()
    if binary is None or modules is None:
        raise RuntimeError(INSTALL_HINT)
    server_cpu, client_cpu = plan.cpus if plan.cpus else (None, None)
    results.mkdir(parents=True, exist_ok=True)
    seconds = plan.seconds
    with tempfile.TemporaryDirectory(prefix="sprechstunde-bench-janus-") as tmp:
        janus: JanusProcess | None = None
        procs: list[multiprocessing.Process] = []
        try:
            address = media_address()
            janus = JanusProcess(binary, modules, Path(tmp), results / f"janus-{n}.log", server_cpu, address)
            janus.wait_healthy()
            rooms = asyncio.run(create_rooms(janus.url, n))
            time.sleep(1.0)
            idle = bench.memory_mb(janus.pid)
            groups = assign(rooms, min(2 * n, bench.MAX_CLIENT_PROCESSES), plan.pair_gap, bench.STAGGER)
            procs, pipes, client_pids = start_clients(groups, clip, client_cpu, JanusParticipant)
            start = time.monotonic() + 0.5
            last_join = start + max(spec["join_at"] for group in groups for spec in group)
            t0 = last_join + plan.warmup
            t1 = t0 + seconds
            for pipe, group in zip(pipes, groups, strict=True):
                pipe.send(
                    {
                        "ws_url": janus.url,
                        "addresses": [address],  # the load clients' host candidates, as Janus's
                        "t0": t0,
                        "t1": t1,
                        "t_close": t1,
                        "late": None,  # no guest: Janus has no counterpart of the interpreter link
                        "join_at": [start + spec["join_at"] for spec in group],
                    }
                )
            bench._sleep_until(t0)
            cpu_before = bench.cpu_seconds(janus.pid)
            clients_before = sum(bench.cpu_seconds(pid) for pid in client_pids)
            busy_before = bench._core_busy()
            wall_before = time.monotonic()
            bench._sleep_until(t1)
            cpu_after = bench.cpu_seconds(janus.pid)
            clients_after = sum(bench.cpu_seconds(pid) for pid in client_pids)
            busy_after = bench._core_busy()
            wall = time.monotonic() - wall_before
            memory = bench.memory_mb(janus.pid)
            participants, _, failures = collect_results(pipes)  # no late joiner in Janus runs
        finally:
            stop_clients(procs)
            if janus is not None:
                janus.stop()
    raw = {
        "mode": "janus",
        "n": n,
        "seconds": seconds,
        "pinning": plan.cpus,
        "warmup": plan.warmup,
        "pair_gap": plan.pair_gap,
        "wall": wall,
        "server_cores": (cpu_after - cpu_before) / wall,
        "client_cores": (clients_after - clients_before) / wall,
        "core_busy": bench._busy_fraction(busy_before, busy_after),
        "rss_idle_mb": idle.get("VmRSS", 0.0),
        "rss_mb": memory.get("VmRSS", 0.0),
        "rss_peak_mb": memory.get("VmHWM", 0.0),
        "client_failures": failures,
        "participants": participants,
        "late_joiner": None,
        "server_log_lines": janus.log_path.read_text(errors="replace").count("\n") if janus else 0,
    }
    raw["summary"] = bench.summarise(raw)
    return raw


def reference_lines(runs: list[dict]) -> list[str]:
    """Per N with both runs: Sprechstunde's forwarding and Janus, server cores per consultation, and
    their ratio (above 1: Sprechstunde needs that many times Janus's CPU for a consultation)."""
    by_key = {(run["mode"], run["n"]): run for run in runs}
    lines = []
    for n in sorted({run["n"] for run in runs}):
        ours, janus = by_key.get(("forward", n)), by_key.get(("janus", n))
        if not ours or not janus:
            continue
        mine = ours["summary"]["cores_per_consultation"]
        theirs = janus["summary"]["cores_per_consultation"]
        ratio = f"{mine / theirs:.2f}" if theirs > 0 else "–"
        lines.append(
            f"N={n}: sprechstunde {mine:.4f} cores/consultation, janus {theirs:.4f}, ratio {ratio}"
            + (" (janus saturated)" if janus["summary"]["saturated"] else "")
        )
    if lines:
        lines.insert(0, "reference (server CPU per consultation, Sprechstunde forwarding ÷ Janus videoroom):")
    return lines
