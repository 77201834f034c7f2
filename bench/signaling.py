"""Signaling load: N concurrent WebSocket clients in rooms of 2 against `sprechstunde serve`.

Each client opens /ws?room=<id>, sends `hello` with its join link and `media: false` (signaling only: the
server sets up no peer connection for it) and waits for `welcome`; with `--media` the hello asks for media
as the browser does, and the server sets up its media side and sends an offer, which these clients leave
unanswered. Figures:

- connect   clients per second until all are in, and the hello → welcome time per client (p50/p99)
- fan-out   one chat message per room per round, sender → the other participant (p50/p99/max), all rooms
            within `--spread` seconds (0: a burst: every room's message written from one turn of this
            process's loop, encoded beforehand, no task per message), several rounds; and the servers'
            CPU time per message (scheduler counters from a round's first message to its last arrival)

The server runs in its own process pinned to CPU 0 when the machine has two or more; the clients run in
this process on the other CPU, so a figure includes this client's own event loop delay. Before each run
the same clients measure the baseline, bench/bare_relay.py (an aiohttp relay with nothing of
Sprechstunde in it), on the same CPU: the fan-out p99 is printed as a ratio to it. The baseline shows
what this machine and these clients allow at the time of the run; it does not cancel the machine's
speed changing from one round to the next (`--no-baseline` skips it). The relay sends the sender no
acknowledgement, so the clients read 500 frames less per round from it; Sprechstunde's arrive some
50 ms after the round, behind its store write.

    .venv/bin/python -m bench.signaling [--clients 1000] [--rounds 5] [--spread 0] [--media]
                                        [--redis URL [--nodes 2]] [--repeat N] [--json out]

With `--redis` the nodes keep state in Redis (one fresh key prefix per run); with `--nodes 2` two server
processes share it and each room's two clients go to the same node, as nginx's room affinity does.
bench/signaling_cost.py counts the instructions per message instead of timing them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bench.bare_relay import BareRelayProcess
from bench.server import PinnedProcess, ServerProcess, machine_speed
from sprechstunde.rooms.service import RoomService
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.store import open_store
from sprechstunde.web.core.config import DATABASE_FILE, prepare_data_dir


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def slashed(values: list[float], spec: str = "g") -> str:
    """Figures of several rounds or runs as printed: `12.5 / 9.8 / 14`."""
    return " / ".join(format(value, spec) for value in values)


def rounds_text(figures: dict) -> str:
    """The per-round part of a load's fan-out line (Sprechstunde's and the baseline's alike)."""
    return (
        f"per round p99 {slashed(figures['round_p99_ms'])} ms; "
        f"server CPU {figures['server_cpu_us_per_message']:g} µs per message"
    )


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2) if values else float("nan"),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else float("nan"),
    }


async def make_rooms(data_dir: Path, count: int, redis: str | None, prefix: str | None) -> list[dict]:
    """Rooms and links written straight into the store the servers read (the same secret)."""
    secret = prepare_data_dir(data_dir)
    store = open_store(data_dir / DATABASE_FILE, redis_url=redis, redis_prefix=prefix)
    try:
        service = RoomService(store, TokenSigner(secret))
        rooms = []
        for _ in range(count):
            room = await service.create("vhs", 3600)
            rooms.append(service.links(room, "").as_json())
        return rooms
    finally:
        await store.close()


def cpu_ms(pids: tuple[int, ...]) -> float:
    """CPU time the processes `pids` (all their threads) have run so far, in ms, read from the
    scheduler's counters in nanoseconds (/proc/<pid>/task/*/schedstat); NaN where there are none."""
    if not pids:
        return float("nan")
    total = 0
    for pid in pids:
        tasks = list(Path(f"/proc/{pid}/task").glob("*/schedstat"))
        if not tasks:
            return float("nan")
        for task in tasks:
            try:
                total += int(task.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass  # a thread that ended meanwhile
    return total / 1e6


def ws_of(client: Client) -> aiohttp.ClientWebSocketResponse:
    assert client.ws is not None, "not connected"
    return client.ws


class Client:
    def __init__(
        self, http: aiohttp.ClientSession, url: str, room: dict, role: str, media: bool = False
    ) -> None:
        self.http = http
        self.media = media
        self.url = f"{url}/ws?room={room['room_id']}"
        self.token = room[f"{role}_url"].rsplit("/join/", 1)[1]
        self.role = role
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.chats: asyncio.Queue[tuple[float, dict]] = asyncio.Queue()
        self.reader: asyncio.Task | None = None
        self.redirected = False

    async def join(self) -> float:
        """hello → welcome; a `wrong_node` answer (the room is pinned elsewhere) is followed once more,
        as the browser does, and counted in the time."""
        started = time.perf_counter()
        url = self.url
        for _ in range(3):
            self.ws = await self.http.ws_connect(url, heartbeat=None, autoping=True)
            hello = {
                "type": "hello",
                "id": 1,
                "v": 1,
                "token": self.token,
                "name": self.role,
                "media": self.media,
            }
            await self.ws.send_str(json.dumps(hello))
            while True:
                message = json.loads((await self.ws.receive(timeout=60)).data)
                if message["type"] in ("welcome", "error"):
                    break
            if message["type"] == "welcome":
                self.redirected = url != self.url
                self.reader = asyncio.ensure_future(self._read())
                return time.perf_counter() - started
            await self.ws.close()
            if message.get("code") != "wrong_node":
                raise RuntimeError(f"hello refused: {message}")
            url = message["url"]
        raise RuntimeError("redirected in a circle")

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            if frame.data.endswith(', "id": 2}'):
                continue  # the echo of our own chat message: not parsed (this process's time is the figure's)
            message = json.loads(frame.data)
            if message["type"] == "chat" and "id" not in message:  # the other's message, not our echo
                await self.chats.put((time.perf_counter(), message))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()


async def run_load(
    urls: list[str],
    rooms: list[dict],
    rounds: int,
    parallel: int,
    settle: float,
    spread: float,
    media: bool = False,
    pids: tuple[int, ...] = (),
    on_round: Callable[[str], None] | None = None,
    pause: float = 0.5,
) -> dict:
    """Connect a citizen and an advisor per room to `urls`, then `rounds` rounds of one chat message per
    room, `pause` seconds apart; `pids`: the server processes whose CPU time per round is counted.
    `on_round` (bench/signaling_cost.py) is called with "settled" once everyone is in, "idle" after a
    further `pause` without messages, and per round with "start" right before its first message,
    "arrived" right after its last arrival and "after" at the end of the pause that follows."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        pairs = [
            (
                Client(http, urls[i % len(urls)], room, "citizen", media),
                Client(http, urls[i % len(urls)], room, "advisor", media),
            )
            for i, room in enumerate(rooms)
        ]
        clients = [c for pair in pairs for c in pair]
        gate = asyncio.Semaphore(parallel)

        async def join(client: Client) -> float:
            async with gate:
                return await client.join()

        started = time.perf_counter()
        joins = await asyncio.gather(*(join(c) for c in clients))
        connect_seconds = time.perf_counter() - started
        # the server is still setting up each participant's media side (peer connection, offer):
        # measure chat once that has settled
        await asyncio.sleep(settle)
        # this process's own full collections (its 1,000 sockets) would count as the server's latency
        gc.freeze()
        if on_round is not None:
            on_round("settled")
            await asyncio.sleep(pause)
            on_round("idle")

        latencies: list[float] = []
        per_round: list[float] = []  # each round's p99: a stall shows as one round, not as noise
        server_cpu: list[float] = []  # the servers' CPU time from a round's first message to its last arrival
        lost = 0
        sent_at: dict[str, float] = {}
        for round_no in range(rounds):
            # the frames encoded beforehand: what is timed is the server's work, not this client's
            texts = [f"r{round_no}-{i}" for i in range(len(pairs))]
            frames = [json.dumps({"type": "chat", "id": 2, "text": text}) for text in texts]
            if on_round is not None:
                on_round("start")
            cpu_before = cpu_ms(pids)
            if spread:  # every room once per round, at an even offset within `spread` seconds

                async def send(
                    index: int, delay: float, texts: list[str] = texts, frames: list[str] = frames
                ) -> None:
                    await asyncio.sleep(delay)
                    sent_at[texts[index]] = time.perf_counter()
                    await ws_of(pairs[index][0]).send_str(frames[index])

                step = spread / len(pairs)
                await asyncio.gather(*(send(i, i * step) for i in range(len(pairs))))
            else:  # a burst: all of them from one turn of this loop, no task per message
                for (sender, _), text, frame in zip(pairs, texts, frames, strict=True):
                    sent_at[text] = time.perf_counter()
                    await ws_of(sender).send_str(frame)
            this_round: list[float] = []
            for _sender, receiver in pairs:
                try:
                    arrived, message = await asyncio.wait_for(receiver.chats.get(), timeout=30)
                except TimeoutError:
                    lost += 1
                    continue
                this_round.append(arrived - sent_at[message["text"]])
            server_cpu.append(max(0.0, cpu_ms(pids) - cpu_before))  # (a thread that ended takes its time)
            if on_round is not None:
                on_round("arrived")
            latencies += this_round
            per_round.append(round(percentile(this_round, 99) * 1000, 1))
            await asyncio.sleep(pause)
            if on_round is not None:
                on_round("after")
        await asyncio.gather(*(c.close() for c in clients))
    return {
        "clients": len(clients),
        "rooms": len(rooms),
        "nodes": len(urls),
        "connect_seconds": round(connect_seconds, 2),
        "connect_rate_per_s": round(len(clients) / connect_seconds, 1),
        "hello_to_welcome": summary_ms(joins),
        "fanout": summary_ms(latencies),
        "round_p99_ms": per_round,
        # per message: the servers' CPU time of a round over its messages (NaN where /proc is missing)
        "server_cpu_us_per_message": round(statistics.median(server_cpu) * 1000 / len(pairs), 1)
        if server_cpu
        else float("nan"),
        "chat_messages": len(latencies),
        "spread_seconds": spread,
        "lost": lost,
        "redirected": sum(c.redirected for c in clients),
        "media": media,
    }


def measure(start: Callable[[int], PinnedProcess], rooms: list[dict], args: argparse.Namespace) -> dict:
    """The load against `args.nodes` processes (servers or bare relays) made by `start(node)`; all of
    those started are stopped after, whatever happens."""
    cpus = sorted(os.sched_getaffinity(0))
    processes: list[PinnedProcess] = []
    try:
        for node in range(args.nodes):
            processes.append(start(node))
        for process in processes:
            process.wait_healthy(timeout=30)
        if len(cpus) > 1:
            os.sched_setaffinity(0, {cpus[-1]})  # the clients on the last CPU, apart from node 1
        return asyncio.run(
            run_load(
                [p.url for p in processes],
                rooms,
                args.rounds,
                args.parallel,
                args.settle,
                args.spread,
                args.media,
                tuple(p.pid for p in processes),
            )
        )
    finally:
        os.sched_setaffinity(0, set(cpus))  # the next run places its processes afresh
        for process in processes:
            process.stop()


def one_run(args: argparse.Namespace) -> dict:
    """One run: the baseline (bare relays) and then fresh server processes (and Redis prefix) under the
    same load, the figures printed."""
    prefix = f"bench-{secrets.token_hex(4)}:" if args.redis else None
    cpus = sorted(os.sched_getaffinity(0))

    def core(node: int) -> int | None:  # node 1 on CPU 0, … ; the clients on the last CPU
        return cpus[node % max(1, len(cpus) - 1)] if len(cpus) > 1 else None

    with tempfile.TemporaryDirectory(prefix="sprechstunde-bench-") as tmp:
        data = Path(tmp) / "data"
        extra = ("--redis", args.redis, "--redis-prefix", prefix) if args.redis else ()

        def relay(node: int) -> PinnedProcess:
            return BareRelayProcess(Path(tmp) / f"relay{node}.log", cpu=core(node))

        def server(node: int) -> PinnedProcess:
            log_path = Path(tmp) / f"node{node}.log"
            return ServerProcess(data, "--log-level", "warning", *extra, log_path=log_path, cpu=core(node))

        try:
            rooms = asyncio.run(make_rooms(data, args.clients // 2, args.redis, prefix))
            baseline = measure(relay, rooms, args) if args.baseline else None
            if baseline is not None and baseline["lost"]:  # before the servers' run, not after it
                raise RuntimeError(f"the bare relay lost {baseline['lost']} messages: no baseline")
            result = measure(server, rooms, args)
        finally:
            if args.redis:
                asyncio.run(_drop_prefix(args.redis, prefix))
    result["store"] = "redis" if args.redis else "sqlite"
    print(
        f"{result['clients']} clients in {result['rooms']} rooms of 2, {result['nodes']} node(s), "
        f"store {result['store']}, {'with' if args.media else 'without'} media\n"
        f"connect: {result['connect_seconds']} s for all, {result['connect_rate_per_s']} clients/s; "
        f"hello→welcome p50 {result['hello_to_welcome']['p50_ms']} ms, "
        f"p99 {result['hello_to_welcome']['p99_ms']} ms; {result['redirected']} redirected (wrong_node)\n"
        f"chat fan-out ({result['chat_messages']} messages, "
        f"{result['rooms']} per {result['spread_seconds']} s{' (burst)' if not args.spread else ''}, "
        f"{result['lost']} lost): "
        f"p50 {result['fanout']['p50_ms']} ms, p99 {result['fanout']['p99_ms']} ms, "
        f"max {result['fanout']['max_ms']} ms; {rounds_text(result)}"
    )
    if baseline is not None:
        ratio = result["fanout"]["p99_ms"] / max(baseline["fanout"]["p99_ms"], 0.01)
        result["baseline"] = {
            "what": "bench/bare_relay.py: aiohttp relay, same clients, same run",
            "fanout": baseline["fanout"],
            "round_p99_ms": baseline["round_p99_ms"],
            "server_cpu_us_per_message": baseline["server_cpu_us_per_message"],
            "lost": baseline["lost"],
        }
        result["p99_ratio_to_baseline"] = round(ratio, 2)
        print(
            "baseline, a bare aiohttp relay (same clients, same run): "
            f"p50 {baseline['fanout']['p50_ms']} ms, p99 {baseline['fanout']['p99_ms']} ms; "
            f"{rounds_text(baseline)}\n"
            f"chat fan-out p99: Sprechstunde / bare relay = {ratio:.2f}"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000, help="even number of clients [1000]")
    parser.add_argument("--rounds", type=int, default=5, help="chat rounds (one message per room each) [5]")
    parser.add_argument("--parallel", type=int, default=100, help="joins in flight at once [100]")
    parser.add_argument(
        "--spread",
        type=float,
        default=1.0,
        help="seconds over which a round's messages are sent; 0: a burst [1]",
    )
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between connecting and chat [3]")
    parser.add_argument(
        "--media", action="store_true", help="ask for media in hello (the server sets up a peer connection)"
    )
    parser.add_argument("--redis", help="redis://… : nodes keep state in Redis (fresh key prefix)")
    parser.add_argument("--nodes", type=int, default=1, help="server processes (more than 1 needs --redis)")
    parser.add_argument("--json", type=Path, help="write the figures to this file too")
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the baseline (bench/bare_relay.py under the same load before each run)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="whole runs, each with fresh servers; the median p99 of them [1]",
    )
    args = parser.parse_args()
    if args.nodes > 1 and not args.redis:
        parser.error("--nodes > 1 needs --redis")
    speed = machine_speed()
    runs = [one_run(args) for _ in range(args.repeat)]
    result = runs[-1] if len(runs) == 1 else {"runs": runs}
    result["machine_speed_seconds"] = speed
    if len(runs) > 1:
        p99s = [run["fanout"]["p99_ms"] for run in runs]
        rates = [run["connect_rate_per_s"] for run in runs]
        result |= {"p99_ms_per_run": p99s, "p99_ms_median": statistics.median(p99s)}
        print(
            f"\n{len(runs)} runs, each a fresh server: chat fan-out p99 per run "
            f"{slashed(p99s)} ms, median {statistics.median(p99s):g} ms; connect {slashed(rates)} clients/s"
        )
        if args.baseline:
            bare = [run["baseline"]["fanout"]["p99_ms"] for run in runs]
            ratios = [run["p99_ratio_to_baseline"] for run in runs]
            result |= {"baseline_p99_ms_per_run": bare, "p99_ratio_median": statistics.median(ratios)}
            print(
                f"baseline (bare aiohttp relay) p99 per run {slashed(bare)} ms; "
                f"ratio per run {slashed(ratios, '.2f')}, "
                f"median {statistics.median(ratios):.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


async def _drop_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


if __name__ == "__main__":
    main()
