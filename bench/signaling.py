"""Signaling load: N concurrent WebSocket clients in rooms of 2 against `sprechstunde serve`.

Each client opens /ws?room=<id>, sends `hello` with its join link and `media: false` (signaling only: the
server sets up no peer connection for it) and waits for `welcome`; with `--media` the hello asks for media
as the browser does, and the server sets up its media side and sends an offer, which these clients leave
unanswered. Figures:

- connect   clients per second until all are in, and the hello → welcome time per client (p50/p99)
- fan-out   one chat message per room per round, sender → the other participant (p50/p99/max), all rooms
            within `--spread` seconds (0: a burst, every room in the same instant), several rounds

The server runs in its own process pinned to CPU 0 when the machine has two or more; the clients run in
this process on the other CPU, so a figure includes this client's own event loop delay.

    .venv/bin/python -m bench.signaling [--clients 1000] [--rounds 5] [--spread 0] [--media]
                                        [--redis URL [--nodes 2]] [--json out]

With `--redis` the nodes keep state in Redis (one fresh key prefix per run); with `--nodes 2` two server
processes share it and each room's two clients go to the same node, as nginx's room affinity does.
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
from pathlib import Path

import aiohttp

from bench.server import ServerProcess
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
) -> dict:
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

        latencies: list[float] = []
        per_round: list[float] = []  # each round's p99: a stall shows as one round, not as noise
        lost = 0
        sent_at: dict[str, float] = {}
        for round_no in range(rounds):

            async def send(index: int, sender: Client, delay: float, round_no: int = round_no) -> None:
                await asyncio.sleep(delay)
                text = f"r{round_no}-{index}"
                sent_at[text] = time.perf_counter()
                assert sender.ws is not None
                await sender.ws.send_str(json.dumps({"type": "chat", "id": 2, "text": text}))

            # every room sends once per round, at an even offset within `spread` seconds (0: all at once)
            step = spread / len(pairs)
            await asyncio.gather(*(send(i, sender, i * step) for i, (sender, _) in enumerate(pairs)))
            this_round: list[float] = []
            for _sender, receiver in pairs:
                try:
                    arrived, message = await asyncio.wait_for(receiver.chats.get(), timeout=30)
                except TimeoutError:
                    lost += 1
                    continue
                this_round.append(arrived - sent_at[message["text"]])
            latencies += this_round
            per_round.append(round(percentile(this_round, 99) * 1000, 1))
            await asyncio.sleep(0.5)
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
        "chat_messages": len(latencies),
        "spread_seconds": spread,
        "lost": lost,
        "redirected": sum(c.redirected for c in clients),
        "media": media,
    }


def one_run(args: argparse.Namespace) -> dict:
    """One run: fresh server processes (and Redis prefix), the load, the figures printed."""
    prefix = f"bench-{secrets.token_hex(4)}:" if args.redis else None
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="sprechstunde-bench-") as tmp:
        data = Path(tmp) / "data"
        rooms = asyncio.run(make_rooms(data, args.clients // 2, args.redis, prefix))
        extra = ("--redis", args.redis, "--redis-prefix", prefix) if args.redis else ()
        servers = [
            ServerProcess(
                data,
                "--log-level",
                "warning",
                *extra,
                log_path=Path(tmp) / f"node{i}.log",
                cpu=cpus[i % max(1, len(cpus) - 1)] if len(cpus) > 1 else None,
            )  # fmt: skip
            for i in range(args.nodes)
        ]
        try:
            for server in servers:
                server.wait_healthy(timeout=30)
            if len(cpus) > 1:
                os.sched_setaffinity(0, {cpus[-1]})  # the clients on the last CPU, apart from node 1
            result = asyncio.run(
                run_load(
                    [s.url for s in servers],
                    rooms,
                    args.rounds,
                    args.parallel,
                    args.settle,
                    args.spread,
                    args.media,
                )
            )
        finally:
            os.sched_setaffinity(0, set(cpus))  # the next run places its processes afresh
            for server in servers:
                server.stop()
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
        f"max {result['fanout']['max_ms']} ms; per round p99 "
        f"{' / '.join(f'{v:g}' for v in result['round_p99_ms'])} ms"
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
        "--repeat",
        type=int,
        default=1,
        help="whole runs, each with fresh servers; the median p99 of them [1]",
    )
    args = parser.parse_args()
    if args.nodes > 1 and not args.redis:
        parser.error("--nodes > 1 needs --redis")
    runs = [one_run(args) for _ in range(args.repeat)]
    result = runs[-1] if len(runs) == 1 else {"runs": runs}
    if len(runs) > 1:
        p99s = [run["fanout"]["p99_ms"] for run in runs]
        rates = [run["connect_rate_per_s"] for run in runs]
        result |= {"p99_ms_per_run": p99s, "p99_ms_median": statistics.median(p99s)}
        print(
            f"\n{len(runs)} runs, each a fresh server: chat fan-out p99 per run "
            f"{' / '.join(f'{v:g}' for v in p99s)} ms, median {statistics.median(p99s):g} ms; "
            f"connect {' / '.join(f'{v:g}' for v in rates)} clients/s"
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
