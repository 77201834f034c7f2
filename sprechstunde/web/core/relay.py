"""`/ws?node=<id>` for another node when nothing in front routes it — `serve --workers N`, where only the
first process listens publicly: that process relays the socket, frame by frame, to the node's own address
(from the node registry). Media does not pass through here; it flows between browser and node directly.
Behind the reverse proxy of deploy/ `?node=` reaches the node itself and this relay is never used."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import WSMsgType, web

from sprechstunde.signaling.connection import HARD_FRAME_LIMIT, HUB_KEY, websocket_handler

log = logging.getLogger(__name__)

RELAY_UNAVAILABLE = 1013  # "try again later": the client's reconnect logic takes over


async def signaling_entry(request: web.Request) -> web.StreamResponse:
    """GET /ws: this node's signaling, or a relay to the node named by `?node=`."""
    nodes = request.app[HUB_KEY].nodes
    wanted = request.query.get("node")
    if nodes is None or not wanted or wanted == nodes.node_id:
        return await websocket_handler(request)
    node = await nodes.find(wanted)
    if node is None or not node.address:
        # gone (its rooms move to a live node) or not reachable directly: serve here
        return await websocket_handler(request)
    return await relay(request, f"ws://{node.address}/ws?node={wanted}")


async def relay(request: web.Request, upstream_url: str) -> web.WebSocketResponse:
    client = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT, heartbeat=20.0)
    await client.prepare(request)
    async with aiohttp.ClientSession() as session:
        try:
            upstream = await session.ws_connect(upstream_url, max_msg_size=HARD_FRAME_LIMIT)
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("relay to %s failed: %s", upstream_url.split("?")[0], type(exc).__name__)
            await client.close(code=RELAY_UNAVAILABLE, message=b"node unavailable")
            return client
        pumps = [
            asyncio.ensure_future(_pump(client, upstream)),
            asyncio.ensure_future(_pump(upstream, client)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            # whoever ended it, the other side learns the same close code (4001, 4002, 1008 …)
            if upstream.closed and not client.closed:
                await client.close(code=upstream.close_code or 1000)
            elif not upstream.closed:
                await upstream.close(code=client.close_code or 1000)
    return client


Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump(source: Socket, sink: Socket) -> None:
    async for message in source:
        if message.type == WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        else:
            break
