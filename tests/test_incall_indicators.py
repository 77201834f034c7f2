"""Issue 17, items 3 and 4 (server side): the `media-state` message and the ICE servers of the join page.

A participant says whether its microphone and camera are on; the server validates it, remembers it on the
participant, forwards a change to the others and reports it in `welcome` / `participant-joined` for those who
come later. The join page carries the ICE servers (with time-limited TURN credentials) so that the pre-join
network check can gather candidates before anyone joins.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.conftest import token_of
from tests.test_signaling import assert_usable, hello, next_of, request


async def joined_pair(client, room_links):
    advisor = await client.ws_connect("/ws")
    citizen = await client.ws_connect("/ws")
    await hello(advisor, token_of(room_links["advisor_url"]), "Herr Schulz")
    await hello(citizen, token_of(room_links["citizen_url"]), "Frau Yılmaz")
    joined = await next_of(advisor, "participant-joined")
    return advisor, citizen, joined["participant"]


async def test_media_state_is_forwarded_and_shown_to_latecomers(client, room_links):
    advisor, citizen, participant = await joined_pair(client, room_links)
    assert participant["media"] == {"audio": True, "video": True}  # nobody said otherwise yet

    await citizen.send_json({"type": "media-state", "audio": False, "video": False})
    forwarded = await next_of(advisor, "media-state")
    assert forwarded == {
        "type": "media-state",
        "participant_id": participant["participant_id"],
        "audio": False,
        "video": False,
    }

    # Back on: forwarded again; the same state repeated (every client sends it after `welcome`) is not.
    await citizen.send_json({"type": "media-state", "audio": True, "video": False})
    assert (await next_of(advisor, "media-state"))["audio"] is True
    await citizen.send_json({"type": "media-state", "audio": True, "video": False})
    await citizen.send_json({"type": "media-state", "audio": True, "video": True})
    again = await next_of(advisor, "media-state")
    assert (again["audio"], again["video"]) == (True, True)
    for ws in (advisor, citizen):
        await ws.close()


async def test_media_state_reaches_whoever_connects_later(client, room_links):
    advisor, citizen, participant = await joined_pair(client, room_links)
    await citizen.send_json({"type": "media-state", "audio": False, "video": True})
    await next_of(advisor, "media-state")
    # The advisor's page reloads (a new connection, a new welcome): it lists the citizen as muted at once,
    # without waiting for the next toggle.
    await advisor.close()
    again = await client.ws_connect("/ws")
    welcome = await hello(again, token_of(room_links["advisor_url"]), "Herr Schulz")
    others = {p["participant_id"]: p for p in welcome["participants"]}
    assert others[participant["participant_id"]]["media"] == {"audio": False, "video": True}
    for ws in (again, citizen):
        await ws.close()


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"type": "media-state", "video": True}, "field 'audio' is missing"),
        ({"type": "media-state", "audio": True}, "field 'video' is missing"),
        ({"type": "media-state", "audio": "false", "video": True}, "field 'audio' has the wrong type"),
        ({"type": "media-state", "audio": True, "video": 0}, "field 'video' has the wrong type"),
        ({"type": "media-state", "audio": None, "video": True}, "field 'audio' has the wrong type"),
    ],
)
async def test_bad_media_state_is_refused_and_changes_nothing(client, room_links, message, text):
    advisor, citizen, participant = await joined_pair(client, room_links)
    reply = await request(citizen, message | {"id": "m-1"})
    while reply["type"] != "error":  # the server's offers may come in between
        reply = await next_of(citizen, "error")
    assert (reply["code"], reply["message"], reply["id"]) == ("bad_message", text, "m-1")
    await assert_usable(citizen)
    # nothing was forwarded: a late joiner still sees both on
    await advisor.close()
    again = await client.ws_connect("/ws")
    welcome = await hello(again, token_of(room_links["advisor_url"]), "Herr Schulz")
    others = {p["participant_id"]: p for p in welcome["participants"]}
    assert others[participant["participant_id"]]["media"] == {"audio": True, "video": True}
    for ws in (again, citizen):
        await ws.close()


async def test_media_state_before_hello_is_refused(client):
    ws = await client.ws_connect("/ws")
    reply = await request(ws, {"type": "media-state", "id": 3, "audio": False, "video": False})
    assert (reply["code"], reply["id"]) == ("not_joined", 3)
    await ws.close()


def ice_servers_of(html: str) -> list:
    found = re.search(r'<script type="application/json" id="prejoin-ice">(.*?)</script>', html, re.S)
    assert found, "the join page carries no ICE servers for the network check"
    return json.loads(found.group(1))


async def test_join_page_carries_ice_servers_with_time_limited_turn_credentials(
    aiohttp_client, config, tmp_path
):
    from sprechstunde.web.core.app import create_app
    from sprechstunde.web.core.services import SERVICES

    config.stun_urls = ["stun:stun.example.org:3478"]
    config.turn_urls = ["turn:turn.example.org:3478?transport=udp"]
    config.turn_secret = "s3cret"
    client = await aiohttp_client(create_app(config))
    services = client.app[SERVICES]
    room = await services.rooms.create("vhs", 3600)
    links = services.rooms.links(room, "").as_json()
    response = await client.get(f"/join/{token_of(links['citizen_url'])}")
    assert response.status == 200
    assert "no-store" in response.headers["Cache-Control"]  # credentials are not cached anywhere
    html = await response.text()
    servers = ice_servers_of(html)
    assert servers[0] == {"urls": ["stun:stun.example.org:3478"]}
    turn = servers[1]
    assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp"] and turn["credential"]
    expiry = int(turn["username"].split(":", 1)[0])
    assert time.time() < expiry <= time.time() + config.ice.turn_ttl + 5
    assert "s3cret" not in html


async def test_join_page_without_ice_servers_renders_an_empty_list(client, room_links):
    html = await (await client.get(f"/join/{token_of(room_links['citizen_url'])}")).text()
    assert ice_servers_of(html) == []


async def test_waiting_page_carries_ice_servers_too(client):
    from sprechstunde.web.core.services import SERVICES
    from tests.test_waiting_api import OPEN, enqueue, token_from

    client.app[SERVICES].waiting.clock.set(OPEN)  # an office hour: the queue takes the citizen
    entry = await enqueue(client)
    response = await client.get(f"/wait/{token_from(entry['waiting_url'])}")
    assert response.status == 200
    html = await response.text()
    assert ice_servers_of(html) == []  # none configured here; the network check then tests host candidates
    assert 'id="network-check"' in html and 'id="mic-level"' in html
