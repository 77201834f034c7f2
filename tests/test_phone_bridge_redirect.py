"""The phone bridge's room leg follows a `wrong_node` redirect (several nodes: the room lives on another
one) and stays in the room: closing the refused socket on the way is not the end of the call's leg."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from sprechstunde.phone import bridge
from sprechstunde.phone.bridge import BridgeError, RoomLeg
from sprechstunde.phone.sip import PhoneCall


async def test_a_redirected_leg_stays_joined(aiohttp_server):
    hellos: list[str] = []

    async def refusing(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        hellos.append(("first", (await ws.receive_json())["media"]))
        url = str(request.url.with_path("/other")).replace("http", "ws", 1)
        await ws.send_json({"type": "error", "id": "h", "code": "wrong_node", "url": url})
        await ws.receive()  # until the leg closes the socket
        return ws

    async def hosting(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        hellos.append(("other", (await ws.receive_json())["media"]))
        await ws.send_json({"type": "welcome", "participant_id": "p-phone", "ice_servers": []})
        async for _ in ws:  # the room goes on until the leg leaves
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", refusing)
    app.router.add_get("/other", hosting)
    server = await aiohttp_server(app)
    call = PhoneCall(None, 1, "+4921511234567", "127.0.0.1")  # type: ignore[arg-type]  # no SIP here
    local_asked: list[str] = []

    async def local(room_id, participant_id, listener):  # this process's media session
        local_asked.append(participant_id)

    url = str(server.make_url("/ws")).replace("http", "ws", 1)
    leg = RoomLeg(call, url, "token", None, local)
    try:
        welcome = await leg.join()
        assert welcome["participant_id"] == "p-phone"
        # to its own process without a peer connection; redirected, the room is elsewhere: over WebRTC
        assert hellos == [("first", False), ("other", True)]
        assert not leg.in_process and local_asked == []
        await asyncio.sleep(0.2)
        assert not leg.ended.is_set(), leg.reason
    finally:
        await leg.close()


async def test_a_media_session_too_slow_to_take_the_caller_is_given_up_but_not_cut_off(
    aiohttp_server, monkeypatch
):
    """The leg gives up after JOIN_TIMEOUT (the IVR joins again), but the media session's work runs to
    its end: cut off inside another participant's renegotiation, it would leave that connection
    waiting for an offer never sent."""

    async def welcoming(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive_json()
        await ws.send_json({"type": "welcome", "room_id": "r-1", "participant_id": "p-phone"})
        async for _ in ws:
            pass
        return ws

    finished: list[str] = []

    async def slow_local(room_id, participant_id, listener):
        await asyncio.sleep(0.3)
        finished.append(participant_id)

    monkeypatch.setattr(bridge, "JOIN_TIMEOUT", 0.1)
    app = web.Application()
    app.router.add_get("/ws", welcoming)
    server = await aiohttp_server(app)
    call = PhoneCall(None, 1, "+4921511234567", "127.0.0.1")  # type: ignore[arg-type]  # no SIP here
    leg = RoomLeg(call, str(server.make_url("/ws")).replace("http", "ws", 1), "token", None, slow_local)
    try:
        with pytest.raises(BridgeError, match="in time"):
            await leg.join()
        await asyncio.sleep(0.4)
        assert finished == ["p-phone"]
    finally:
        await leg.close()
