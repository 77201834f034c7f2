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

ABNORMAL = 1006
SERVICE_RESTART = 1012
CONNECT_SECONDS = 2.0


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


async def relay(request: web.Request, upstream_url: str) -> web.StreamResponse:
    """Relay the socket to `upstream_url`; when that node does not take it (killed, issue 21), serve it
    here instead of closing: the client's `hello` then finds the room's node gone (signaling/nodes.py
    checks it) and the room moves here at once, instead of after the client's backoff and the node's
    heartbeat expiry."""
    # a node that does not take the connection within CONNECT_SECONDS is served here (the default: 30 s of a
    # page waiting); no limit on the relayed socket's lifetime
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_SECONDS, sock_connect=CONNECT_SECONDS)
    )
    try:
        upstream = await session.ws_connect(upstream_url, max_msg_size=HARD_FRAME_LIMIT)
    except (aiohttp.ClientError, OSError) as exc:
        await session.close()
        log.warning("relay to %s failed: %s", upstream_url.split("?")[0], type(exc).__name__)
        return await websocket_handler(request)
    async with session:
        client = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT, heartbeat=20.0)
        await client.prepare(request)
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
                code = upstream.close_code or 1000
                # the node vanished (killed): "service restart", which the page reconnects after; 1006
                # itself may not be sent in a close frame
                await client.close(code=SERVICE_RESTART if code == ABNORMAL else code)
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
