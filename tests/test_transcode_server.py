"""`--media-mode transcode` when someone leaves: the server, a real
`serve` process, keeps answering. A publisher's leaving once sent its subscribers' relayed tracks into a
loop that never yielded to the event loop — every consultation on the node froze and Ctrl-C did nothing.
The server runs in its own process here so that such a freeze fails the test instead of freezing it.
Someone joining after the leave is seen and heard by those who stayed (in transcode mode the leaver's
lines are not reused: the sender still holding the old relayed track would end the newcomer's stream)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.browser_support import create_room, guest_url, running_server
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant


async def test_a_publisher_leaving_a_transcoded_call_leaves_the_server_responsive(tmp_path):
    with running_server(tmp_path, "--media-mode", "transcode") as server:
        links = create_room(server)
        ws_url = server["base_url"].replace("http", "ws", 1) + "/ws"
        async with aiohttp.ClientSession() as session:
            citizen = RtcParticipant(session, ws_url, token_of(links["citizen_url"]), "Frau Yılmaz")
            advisor = RtcParticipant(session, ws_url, token_of(links["advisor_url"]), "Beraterin")
            people = [citizen, advisor]
            try:
                for person in (citizen, advisor):
                    await person.join()
                await asyncio.gather(*(p.wait_frames(video=10, audio=10) for p in (citizen, advisor)))
                await citizen.send({"type": "leave", "id": "bye"})
                await advisor.wait_for("participant-left", timeout=5)
                # the advisor's relayed track now has no source: the server must go on answering
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    async with session.get(server["base_url"] + "/healthz", timeout=2) as response:
                        assert response.status == 200
                    await asyncio.sleep(0.2)
                # a newcomer (an interpreter) after the leave: the advisor sees and hears them
                interpreter = RtcParticipant(
                    session, ws_url, token_of(guest_url(server, links)), "Dolmetscher"
                )
                people.append(interpreter)
                await interpreter.join()
                await interpreter.wait_frames(video=10, audio=10)
                before = dict(advisor.frames)
                await advisor.wait_frames(video=before["video"] + 10, audio=before["audio"] + 10, timeout=10)
            finally:
                for person in people:
                    await person.close()
        started = time.monotonic()
        server["process"].send_signal(2)  # SIGINT, as an operator's Ctrl-C
        server["process"].wait(timeout=10)
        assert time.monotonic() - started < 5
