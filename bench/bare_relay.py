"""The chat benchmark's baseline: an aiohttp WebSocket relay with nothing of Sprechstunde in it.

bench/signaling.py measures how long a chat message takes from one participant to the other while 500
rooms send at the same instant. Most of that time is not Sprechstunde's: one Python process reads 500
WebSocket frames and writes 500 more, each a system call through the loopback TCP stack, and this
machine's speed varies from minute to minute. This relay does the least any aiohttp server must do for
the same exchange: `hello` answered with `welcome`; every other frame parsed as JSON, re-encoded as a
`chat` message and written to the other socket of its room. No tokens, validation, history, store,
acknowledgement or rate limit. Measured with the same clients in the same run, its figure is the floor;
Sprechstunde's is printed as a ratio to it.

    .venv/bin/python -m bench.bare_relay --port 8099
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import WSMsgType, web

from bench.server import PinnedProcess, free_port
from sprechstunde.web.core.cli import GC_THRESHOLDS

ROOMS_KEY = web.AppKey("rooms", dict)


async def relay(request: web.Request) -> web.WebSocketResponse:
    """GET /ws?room=…: `hello` → `welcome`; anything else → a `chat` to the others of the room."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    room: list[web.WebSocketResponse] = request.app[ROOMS_KEY].setdefault(request.query.get("room", ""), [])
    room.append(ws)
    try:
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message.get("type") == "hello":
                await ws.send_str(json.dumps({"type": "welcome", "id": message.get("id")}))
                continue
            text = json.dumps({"type": "chat", "text": message.get("text")})
            for other in room:
                if other is not ws:
                    await other.send_str(text)
    finally:
        room.remove(ws)
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def app() -> web.Application:
    application = web.Application()
    application[ROOMS_KEY] = {}
    application.router.add_get("/ws", relay)
    application.router.add_get("/healthz", healthz)
    return application


class BareRelayProcess(PinnedProcess):
    """The relay as a subprocess on loopback, optionally pinned to one core like the server it stands
    beside."""

    def __init__(self, log_path: Path, cpu: int | None = None, prefix: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "bench.bare_relay", "--port", str(self.port)]
        super().__init__(command, log_path=log_path, cpu=cpu, prefix=prefix)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    gc.freeze()  # the collector set up as `serve` sets it: no full walks of the start-up heap
    gc.set_threshold(*GC_THRESHOLDS)
    web.run_app(app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
