"""Two real aiortc peers call each other through the server's SFU-lite."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCSessionDescription

from tests.conftest import token_of
from tests.rtc_client import RtcParticipant


@pytest.fixture
async def participant(client, room_links):
    """Makes participants for the room's links (by role) and closes them after the test."""
    made: list[RtcParticipant] = []

    def make(role: str, name: str) -> RtcParticipant:
        url = str(client.make_url("/ws"))
        made.append(RtcParticipant(client.session, url, token_of(room_links[f"{role}_url"]), name))
        return made[-1]

    yield make
    for p in made:
        await p.close()


async def test_two_participants_receive_each_others_video_and_audio(participant, services):
    citizen = participant("citizen", "Bürgerin")
    advisor = participant("advisor", "Berater")
    await citizen.join()
    welcome = await advisor.join()
    assert [p["role"] for p in welcome["participants"]] == ["citizen"]
    joined = await citizen.wait_for("participant-joined")
    assert joined["participant"]["role"] == "advisor"
    await asyncio.gather(citizen.wait_frames(video=30, audio=50), advisor.wait_frames(video=30, audio=50))
    # Forwarded, not transcoded: the server decoded nothing and passed the frames through.
    stats = services.hub.rooms[welcome["room_id"]].media.stats()
    assert stats["frames_out"] > 0


async def test_reconnect_within_grace_keeps_place_and_media_resumes(participant):
    citizen = participant("citizen", "Bürgerin")
    advisor = participant("advisor", "Berater")
    await citizen.join()
    await advisor.join()
    await citizen.wait_frames(video=10, audio=10)
    first_id = citizen.welcome["participant_id"]
    await citizen.drop()
    welcome = await citizen.join(resume=citizen.resume)
    assert welcome["resumed"] is True
    assert welcome["participant_id"] == first_id
    await citizen.wait_frames(video=10, audio=10)
    await advisor.wait_frames(video=10, audio=10)
    assert not [m for m in advisor.messages if m["type"] == "participant-left"]


async def test_client_offer_is_answered_when_stable_and_refused_as_glare_otherwise(participant):
    citizen = participant("citizen", "Bürgerin")
    await citizen.join()
    await citizen.wait_for("offer")
    await asyncio.sleep(0.2)  # our answer to the server's offer is on its way
    pc = citizen.pc
    await pc.setLocalDescription(await pc.createOffer())
    await citizen.send({"type": "offer", "id": "o1", "sdp": pc.localDescription.sdp})
    answer = await citizen.wait_for("answer", id="o1")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    assert pc.signalingState == "stable"

    # A second participant makes the server offer again; an offer crossing it is glare.
    advisor = participant("advisor", "Berater")
    advisor._answer = _never_answer  # keep the server's offer outstanding
    await advisor.join()
    await advisor.wait_for("offer")
    await advisor.send({"type": "offer", "id": "o2", "sdp": "v=0\r\n"})
    error = await advisor.wait_for("error", id="o2")
    assert error["code"] == "glare"


async def _never_answer(offer) -> None:
    return None
