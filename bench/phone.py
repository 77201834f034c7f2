"""Phone benchmark (issue 20): N simultaneous SIP callers bridged into consultation rooms, the server's CPU
per call beside one video consultation's, and the longest audio gap each advisor hears.

One `sprechstunde serve --sip-listen` process; N baresip callers (Debian) each send a 1 kHz tone, choose
Deutsch / Volkshochschule by DTMF and wait; N advisors sign in, take "Nächste Person" on the console
socket and join the room with an aiortc client sending 600 Hz (so the bridge decodes, mixes and
re-encodes in both directions). Over a fixed window the advisors record every received audio frame's
arrival time and level: a gap is the longest stretch without a frame that carries the tone (no frame at
all, or a silent one). The server's CPU time comes from /proc/<pid>/stat (every thread, PJSIP's too),
minus its idle rate measured before the calls. After the callers hang up, one video consultation (two
participants replaying bench/clip.py's 640×480 VP8 + Opus through bench/loadclient.py) runs through the
same process over a window of the same length: the baseline the per-call figure is printed against.

The pjsua2-python wheel caps one process at 4 calls (PJSUA_MAX_CALLS), so the default is 4 callers.

    .venv/bin/python -m bench.phone                 # 4 callers, 20 s windows
    .venv/bin/python -m bench.phone --callers 2 --seconds 10

Results: a table on stdout and bench/results/phone.json (the server's log next to it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import aiohttp
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench import loadclient
from bench.clip import build_clip
from bench.media_relay import cpu_seconds, create_rooms
from bench.server import ServerProcess
from tests.phone_support import Baresip, free_sip_port, tone_wav
from tests.rtc_client import RtcParticipant
from tests.test_phone_bridge import ToneTrack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "richtig-langes-passwort"
CALLER_TONE = 1000.0
ADVISOR_TONE = 600.0
GAP_LIMIT_MS = 100.0  # the acceptance criterion: no gap over this at the advisor
SILENT_RMS = 1000.0  # a frame below this carries no tone (the tone arrives at RMS ≈ 5000)
# every day open (the benchmark must not depend on the hour it runs at), no holidays
OFFICES = """timezone = "Europe/Berlin"
holiday_state = ""
languages = ["de", "en"]

[offices.vhs]
name_de = "Volkshochschule"
name_en = "Adult Education Centre"
[offices.vhs.hours]
mon = "00:00-23:59"
tue = "00:00-23:59"
wed = "00:00-23:59"
thu = "00:00-23:59"
fri = "00:00-23:59"
sat = "00:00-23:59"
sun = "00:00-23:59"
"""


class GapAdvisor(RtcParticipant):
    """An advisor that notes, for every received audio frame, when it came and whether it was loud."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audio: list[tuple[float, bool]] = []

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if track.kind != "audio":
                    continue
                channels = len(frame.layout.channels)
                data = array("h", bytes(frame.planes[0])[: frame.samples * 2 * channels])[::channels]
                rms = math.sqrt(sum(x * x for x in data) / len(data)) if data else 0.0
                self.audio.append((time.monotonic(), rms >= SILENT_RMS))
        except (MediaStreamError, asyncio.CancelledError):
            pass

    def loud_frames(self) -> int:
        return sum(1 for _, loud in self.audio if loud)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """Frames, silent frames and the longest stretch without a loud frame inside [t0, t1]."""
        inside = [(t, loud) for t, loud in self.audio if t0 <= t <= t1]
        loud = [t for t, is_loud in inside if is_loud]
        points = [t0, *loud, t1]
        gaps = [b - a for a, b in zip(points, points[1:], strict=False)]
        worst = max(range(len(gaps)), key=gaps.__getitem__)
        return {
            "frames": len(inside),
            "silent_frames": len(inside) - len(loud),
            "max_gap_ms": round(gaps[worst] * 1000, 1),
            "max_gap_at_s": round(points[worst] - t0, 2),
            "gaps_over_limit": sum(1 for g in gaps if g * 1000 > GAP_LIMIT_MS),
        }


def add_advisors(data_dir: Path, count: int) -> list[str]:
    names = [f"berater{i}" for i in range(count)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sprechstunde",
                "user",
                "add",
                name,
                "--office",
                "vhs",
                "--language",
                "de",
                "--role",
                "advisor",
                "--password-stdin",
                "--data-dir",
                str(data_dir),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in names
    ]
    for proc in procs:
        _, err = proc.communicate(PASSWORD + "\n", timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"user add failed: {err}")
    return names


async def cpu_rate(pid: int, seconds: float) -> float:
    """Server cores used over `seconds` of wall time (CPU seconds ÷ wall seconds)."""
    before, start = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start)


async def claim(base: str, username: str) -> str:
    """Sign in as `username`, take "Nächste Person" on the console socket; the advisor's join token."""
    # unsafe: the jar keeps cookies of an IP address (the server on 127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(base + "/api/login", json={"username": username, "password": PASSWORD}) as r:
            if r.status != 200:
                raise RuntimeError(f"login {username}: {r.status} {await r.text()}")
        console = await http.ws_connect(base + "/ws/console", headers={"Origin": base})
        try:
            for attempt in range(100):
                await console.send_json({"type": "next", "id": f"n{attempt}"})
                while True:
                    message = await console.receive_json(timeout=10)
                    if message.get("id") == f"n{attempt}":
                        break
                if message["type"] == "claimed":
                    return message["advisor_url"].rsplit("/join/", 1)[1]
                await asyncio.sleep(0.5)  # queue_empty: the callers are still choosing
            raise RuntimeError(f"{username} found nobody to claim")
        finally:
            await console.close()


async def phone_case(server: ServerProcess, data_dir: Path, args: argparse.Namespace, work: Path) -> dict:
    sip_port = int(args.sip_listen.rsplit(":", 1)[1])
    names = add_advisors(data_dir, args.callers)
    voice = tone_wav(work / "voice.wav", CALLER_TONE, args.seconds * 3 + 120)
    callers: list[Baresip] = []
    advisors: list[GapAdvisor] = []
    http = aiohttp.ClientSession()
    try:

        async def call(i: int) -> None:
            await asyncio.sleep(0.5 * i)
            for attempt in range(3):
                # baresip's TLS transport takes a port next to its SIP port, which may be taken: retry
                phone = Baresip(work / f"caller{i}-{attempt}", user=f"49215100{i:04d}", source=voice)
                callers.append(phone)
                try:
                    await phone.ready(timeout=15)
                    break
                except TimeoutError:
                    if "already in use" not in phone.text() or attempt == 2:
                        raise RuntimeError(f"caller {i}: baresip did not start\n{phone.text()}") from None
            try:
                await phone.dial(f"sip:beratung@127.0.0.1:{sip_port}")
                await phone.established(timeout=20)
            except TimeoutError as exc:
                raise RuntimeError(f"caller {i}: {exc}") from exc
            await phone.press("1")  # Deutsch
            await asyncio.sleep(1.0)
            await phone.press("1")  # Volkshochschule

        await asyncio.gather(*(call(i) for i in range(args.callers)))
        await asyncio.sleep(2.0)
        tokens = [await claim(server.url, name) for name in names]
        ws_url = f"ws://127.0.0.1:{server.port}/ws"
        for i, token in enumerate(tokens):
            advisor = GapAdvisor(http, ws_url, token, f"Berater {i}", tracks=[ToneTrack(ADVISOR_TONE)])
            await advisor.join()
            advisors.append(advisor)
        deadline = time.monotonic() + 30
        while any(a.loud_frames() < 100 for a in advisors):  # 2 s of the caller's tone everywhere
            if time.monotonic() > deadline:
                raise RuntimeError(f"no caller tone at some advisor: {[a.loud_frames() for a in advisors]}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        cores = await cpu_rate(server.pid, args.seconds)
        t1 = time.monotonic()
        windows = [advisor.window(t0, t1) for advisor in advisors]
        lost = [phone.dir.name for phone in callers if phone.process.poll() is not None]
        return {"callers": args.callers, "cores": cores, "advisors": windows, "callers_ended_early": lost}
    finally:
        for advisor in advisors:
            await advisor.close()
        await http.close()
        for phone in callers:
            phone.hangup()
        await asyncio.sleep(1.0)
        for phone in callers:
            phone.close()


async def video_case(server: ServerProcess, data_dir: Path, seconds: float) -> dict:
    """One 1:1 video consultation (the media benchmark's load participants, replaying the clip)."""
    clip = build_clip()
    tokens = create_rooms(data_dir, server.url, 1)[0]
    now = time.monotonic()
    participants = [
        {"token": tokens[role], "name": role, "role": role, "consultation": 0, "join_at": now + i * 0.2}
        for i, role in enumerate(("citizen", "advisor"))
    ]
    t0 = now + 6.0
    schedule = {"t0": t0, "t1": t0 + seconds, "ws_url": f"ws://127.0.0.1:{server.port}/ws"}
    run = asyncio.ensure_future(loadclient._run(participants, clip, schedule))
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    cores = await cpu_rate(server.pid, seconds)
    result = await run
    received = {
        p["role"]: {kind: p[kind]["count"] for kind in ("audio", "video")} for p in result["participants"]
    }
    return {"cores": cores, "received": received, "errors": [p["error"] for p in result["participants"]]}


async def main_async(args: argparse.Namespace) -> dict:
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-phone-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        offices = work / "offices.toml"
        offices.write_text(OFFICES)
        args.sip_listen = f"127.0.0.1:{free_sip_port()}"
        extra = ["--offices", str(offices), "--sip-listen", args.sip_listen, "--sip-allow", "127.0.0.1/32",
                 "--sip-calls-per-minute", "100"]  # fmt: skip
        with ServerProcess(data_dir, *extra, log_path=RESULTS / "phone-server.log") as server:
            server.wait_healthy()
            await asyncio.sleep(8.0)  # the start-up renders the fixed prompts (espeak-ng) in the background
            idle = await cpu_rate(server.pid, 5.0)
            phone = await phone_case(server, data_dir, args, work)
            await asyncio.sleep(3.0)
            video = await video_case(server, data_dir, args.seconds)
    phone["per_call_cores"] = max(0.0, phone["cores"] - idle) / args.callers
    video["consultation_cores"] = max(0.0, video["cores"] - idle)
    return {"idle_cores": idle, "seconds": args.seconds, "phone": phone, "video": video}


def report(result: dict) -> None:
    phone, video = result["phone"], result["video"]
    idle, per_call, per_video = result["idle_cores"], phone["per_call_cores"], video["consultation_cores"]
    gaps = [w["max_gap_ms"] for w in phone["advisors"]]
    print(f"server idle: {idle * 100:.1f} % of a core")
    print(f"\n{phone['callers']} simultaneous callers, {result['seconds']:.0f} s window:")
    print("  advisor  frames  silent  longest gap (ms)  gaps > 100 ms")
    for i, w in enumerate(phone["advisors"]):
        row = f"{w['frames']:>6}  {w['silent_frames']:>6}  {w['max_gap_ms']:>16.1f}"
        print(f"  {i:>7}  {row}  {w['gaps_over_limit']:>13}")
    verdict = "within" if max(gaps) <= GAP_LIMIT_MS else "OVER"
    median = statistics.median(gaps)
    print(f"  longest gap at any advisor: {max(gaps):.1f} ms ({verdict} 100 ms), median {median:.1f} ms")
    total = phone["cores"] * 100
    print(f"  server: {total:.1f} % of a core in all, {per_call * 100:.1f} % per call above idle")
    print(f"\nvideo consultation (2 × 640×480 VP8 + Opus): {per_video * 100:.1f} % of a core above idle")
    print(f"  received frames: {video['received']}")
    if per_video > 0:
        print(f"\nper phone call ÷ per video consultation: {per_call / per_video:.2f}")
    if per_call > 0:
        processes = math.ceil(20 / 4)
        print(f"20 callers extrapolated: {20 * per_call:.2f} cores ({processes} processes of 4 calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=4, help="simultaneous callers (one process holds 4)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window (each case)")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    (RESULTS / "phone.json").write_text(json.dumps(result, indent=2))
    report(result)


if __name__ == "__main__":
    main()
