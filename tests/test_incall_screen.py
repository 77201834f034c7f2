"""Screen sharing through the forwarding server (issue 17 item 5), with real aiortc peers.

Each participant's third m-line (mid 2) carries its screen. While it shares (`screen` on), the server
forwards that line to everyone else like the camera — encoded frames passed through, nothing decoded —
and labels it `screen` in the `streams` map; `screen` off drops it again. One screen per consultation.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

import av
import pytest
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from prometheus_client.parser import text_string_to_metric_families

from sprechstunde.media.aiortc_fork.receiver import _ESTIMATOR
from sprechstunde.media.session import SOURCES
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant

SCREEN_SIZE = (960, 544)  # a picture no fake camera sends (aiortc's is 640×480)


class ScreenTrack(VideoStreamTrack):
    """A 'screen': a grey 960×544 picture at 15 fps."""

    async def recv(self) -> av.VideoFrame:
        pts, _ = await self.next_timestamp()
        frame = av.VideoFrame(*SCREEN_SIZE, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = Fraction(1, 90000)
        return frame


class Sharer(RtcParticipant):
    """A participant that puts a screen track on its screen line (mid 2) from the first answer on, and
    counts the frames and picture widths it decodes per received m-line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.screen = ScreenTrack()
        self.by_mid: dict[str, int] = {}
        self.widths: dict[str, int] = {}

    async def join(self, resume: str | None = None, urls: list[str] | None = None) -> dict[str, Any]:
        if self.pc is not None:
            # aiortc's old senders stop their tracks once they wind down: a comeback needs fresh ones
            # (a browser keeps its camera and screen tracks across connections)
            self.tracks = [AudioStreamTrack(), VideoStreamTrack()]
            self.screen = ScreenTrack()
        return await super().join(resume, urls)

    async def _answer(self, offer: dict[str, Any]) -> None:
        assert self.pc is not None
        if not self._published:
            from aiortc import RTCSessionDescription

            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
            for transceiver in self.pc.getTransceivers():
                if transceiver.mid == "2":
                    transceiver.sender.replaceTrack(self.screen)
                    transceiver.direction = "sendrecv"
            for track in self.tracks:
                self.pc.addTrack(track)
            self._published = True
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self._send_answer(self.pc.localDescription.sdp)
            return
        await super()._answer(offer)

    async def _consume(self, track: MediaStreamTrack) -> None:
        assert self.pc is not None
        mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if mid is not None and track.kind == "video":
                    self.by_mid[mid] = self.by_mid.get(mid, 0) + 1
                    self.widths[mid] = frame.width
        except (MediaStreamError, asyncio.CancelledError):
            pass

    def latest_streams(self) -> dict[str, dict[str, str]]:
        offers = [m for m in self.messages if m["type"] == "offer"]
        return offers[-1]["streams"] if offers else {}

    async def wait_mid_frames(self, mid: str, count: int, timeout: float = 15.0) -> None:
        start = self.by_mid.get(mid, 0)

        async def poll() -> None:
            while self.by_mid.get(mid, 0) < start + count:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def people(client, services):
    room = await services.rooms.create("vhs", 3600)
    made: list[Sharer] = []

    def make(role: str, name: str) -> Sharer:
        token = token_of(services.rooms.link(room, role, "http://test"))
        made.append(Sharer(client.session, str(client.make_url("/ws")), token, name,
                           tracks=[AudioStreamTrack(), VideoStreamTrack()]))  # fmt: skip
        return made[-1]

    yield make
    for person in made:
        await person.close()


async def in_call(people) -> tuple[Sharer, Sharer]:
    citizen, advisor = people("citizen", "Bürgerin"), people("advisor", "Berater")
    await citizen.join()
    await advisor.join()
    await asyncio.gather(citizen.wait_frames(video=10, audio=10), advisor.wait_frames(video=10, audio=10))
    return citizen, advisor


async def screen_mid(person: Sharer, sharer: Sharer, timeout: float = 10.0) -> str:
    """The mid on which `person` receives `sharer`'s screen, once an offer announced it."""
    sharer_id = sharer.welcome["participant_id"]

    async def find() -> str:
        while True:
            for mid, info in person.latest_streams().items():
                if info == {"participant_id": sharer_id, "kind": "screen"}:
                    return mid
            person._event.clear()
            await person._event.wait()

    return await asyncio.wait_for(find(), timeout)


def media(services, person: Sharer):
    return services.hub.rooms[person.welcome["room_id"]].media


async def test_a_shared_screen_reaches_the_other_as_a_screen_stream_forwarded_not_transcoded(
    people, services, client
):
    citizen, advisor = await in_call(people)
    # before sharing nobody receives a screen line: two streams per other participant
    assert sorted(info["kind"] for info in advisor.latest_streams().values()) == ["audio", "video"]
    await citizen.send({"type": "screen", "id": "s-1", "on": True})
    ack = await citizen.wait_for("screen", id="s-1")
    assert ack == {
        "type": "screen",
        "id": "s-1",
        "participant_id": citizen.welcome["participant_id"],
        "on": True,
    }
    event = await advisor.wait_for("screen")
    assert event == {"type": "screen", "participant_id": citizen.welcome["participant_id"], "on": True}
    mid = await screen_mid(advisor, citizen)
    await advisor.wait_mid_frames(mid, 20)
    assert advisor.widths[mid] == SCREEN_SIZE[0]  # the screen's picture, not the camera's
    camera_mids = [m for m, i in advisor.latest_streams().items() if i["kind"] == "video"]
    assert [advisor.widths.get(m) for m in camera_mids] == [640]
    # the sharer does not get its own screen back
    assert all(i["kind"] != "screen" for i in citizen.latest_streams().values())
    # forwarded: frames counted under "screen", none decoded on the server, and the track passes through
    forwarding = services.hub.forwarding
    assert forwarding.frames["screen"] >= 20 and forwarding.bytes["screen"] > 0
    assert forwarding.decoded == 0
    peer = media(services, advisor).peer(advisor.welcome["participant_id"])
    track = peer._downlink[(citizen.welcome["participant_id"], "screen")].sender.track
    assert track.output_mime == "video/vp8" and not track.encodes_here
    # the sharer's camera and screen lines feed one bitrate estimate (one REMB for the connection)
    uplink = media(services, citizen).peer(citizen.welcome["participant_id"])._uplink
    assert vars(uplink["screen"].receiver)[_ESTIMATOR] is vars(uplink["video"].receiver)[_ESTIMATOR]
    response = await client.get("/metrics")
    assert response.status == 200
    metrics = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(await response.text())
        for s in family.samples
    }
    assert metrics[("sprechstunde_media_frames_forwarded_total", (("kind", "screen"),))] >= 20
    assert metrics[("sprechstunde_media_frames_transcoded_total", ())] == 0


async def test_stopping_the_share_drops_the_screen_line_and_the_camera_carries_on(people, services):
    citizen, advisor = await in_call(people)
    await advisor.send({"type": "screen", "id": "a-1", "on": True})
    mid = await screen_mid(citizen, advisor)
    await citizen.wait_mid_frames(mid, 10)
    session = media(services, advisor)
    camera, screen = (session.publication(advisor.welcome["participant_id"], s) for s in ("video", "screen"))
    for publication, estimate in ((camera, 300_000), (screen, 500_000)):
        for track in publication._subscribers:
            track.estimate = estimate
    # a REMB caps all a browser sends: camera and screen get their shares together
    assert camera.publisher_cap() == screen.publisher_cap() == 800_000
    offers = len([m for m in citizen.messages if m["type"] == "offer"])
    await advisor.send({"type": "screen", "id": "a-2", "on": False})
    assert (await citizen.wait_for("screen", on=False))["participant_id"] == advisor.welcome["participant_id"]

    async def renegotiated() -> None:
        while len([m for m in citizen.messages if m["type"] == "offer"]) <= offers:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(renegotiated(), 10)
    # while it was shared, the REMB to the advisor allowed camera and screen together; now the camera's
    session = media(services, advisor)
    camera = session.publication(advisor.welcome["participant_id"], "video")
    for track in camera._subscribers:
        track.estimate = 300_000
    assert camera.publisher_cap() == 300_000
    assert sorted(i["kind"] for i in citizen.latest_streams().values()) == ["audio", "video"]
    assert media(services, advisor).screen_sharer is None
    camera = next(m for m, i in citizen.latest_streams().items() if i["kind"] == "video")
    await citizen.wait_mid_frames(camera, 20)  # the camera keeps coming
    # stopping twice is harmless: acknowledged, nothing renegotiated
    await advisor.send({"type": "screen", "id": "a-3", "on": False})
    assert (await advisor.wait_for("screen", id="a-3"))["on"] is False
    # sharing again reuses the spare line rather than adding one
    lines = len(media(services, citizen).peer(citizen.welcome["participant_id"]).pc.getTransceivers())
    await advisor.send({"type": "screen", "id": "a-4", "on": True})
    again = await screen_mid(citizen, advisor)
    await citizen.wait_mid_frames(again, 10)
    assert again == mid
    assert len(media(services, citizen).peer(citizen.welcome["participant_id"]).pc.getTransceivers()) == lines


async def test_a_second_sharer_is_refused_until_the_first_stops(people, services):
    citizen, advisor = await in_call(people)
    await citizen.send({"type": "screen", "id": "c-1", "on": True})
    await citizen.wait_for("screen", id="c-1")
    await advisor.send({"type": "screen", "id": "a-1", "on": True})
    refusal = await advisor.wait_for("error", id="a-1")
    assert refusal["code"] == "screen_busy"
    assert media(services, citizen).screen_sharer == citizen.welcome["participant_id"]
    await citizen.send({"type": "screen", "id": "c-2", "on": False})
    await citizen.wait_for("screen", id="c-2")
    await advisor.send({"type": "screen", "id": "a-2", "on": True})
    assert (await advisor.wait_for("screen", id="a-2"))["on"] is True
    mid = await screen_mid(citizen, advisor)
    await citizen.wait_mid_frames(mid, 10)
    # a malformed request is refused clearly, the share goes on
    await advisor.send({"type": "screen", "id": "a-3", "on": "yes"})
    assert (await advisor.wait_for("error", id="a-3"))["code"] == "bad_message"
    await advisor.send({"type": "screen", "id": "a-4"})
    assert (await advisor.wait_for("error", id="a-4"))["message"] == "field 'on' is missing"
    await citizen.wait_mid_frames(mid, 10)


async def test_a_newcomer_sees_the_screen_already_shared_and_it_ends_when_the_sharer_leaves(people, services):
    citizen, advisor = await in_call(people)
    await citizen.send({"type": "screen", "id": "c-1", "on": True})
    await citizen.wait_for("screen", id="c-1")
    guest = people("guest", "Dolmetscherin")
    await guest.join()
    mid = await screen_mid(guest, citizen)
    await guest.wait_mid_frames(mid, 10)
    assert guest.widths[mid] == SCREEN_SIZE[0]
    await citizen.send({"type": "leave", "id": "bye"})
    await advisor.wait_for("participant-left")

    async def gone(person: Sharer) -> None:
        while any(i["kind"] == "screen" for i in person.latest_streams().values()):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(asyncio.gather(gone(advisor), gone(guest)), 10)
    assert media(services, advisor).screen_sharer is None
    # the one who stays may share now
    await advisor.send({"type": "screen", "id": "a-1", "on": True})
    assert (await advisor.wait_for("screen", id="a-1"))["on"] is True


async def test_the_share_survives_the_sharers_reconnect(people, services):
    citizen, advisor = await in_call(people)
    await citizen.send({"type": "screen", "id": "c-1", "on": True})
    mid = await screen_mid(advisor, citizen)
    await advisor.wait_mid_frames(mid, 10)
    await citizen.drop()  # the network goes; the citizen comes back within the grace period
    welcome = await citizen.join(resume=citizen.resume)
    assert welcome["resumed"] is True
    await citizen.send({"type": "screen", "id": "c-2", "on": True})  # as the page does after a welcome
    assert (await citizen.wait_for("screen", id="c-2"))["on"] is True
    await advisor.wait_mid_frames(mid, 20)  # the same line carries on, from the new connection
    assert advisor.widths[mid] == SCREEN_SIZE[0]
    assert media(services, advisor).screen_sharer == citizen.welcome["participant_id"]


async def test_a_client_without_a_screen_line_is_told_it_cannot_share(people, services, client):
    citizen, advisor = await in_call(people)
    # a client of before screen sharing: answers the screen line inactive (no track on it)
    older = RtcParticipant(client.session, str(client.make_url("/ws")), citizen.token, "Ältere Seite")
    await citizen.close()
    try:
        await older.join()
        await older.wait_frames(video=5, audio=5)
        await older.send({"type": "screen", "id": "o-1", "on": True})
        assert (await older.wait_for("error", id="o-1"))["code"] == "screen_unavailable"
        assert media(services, advisor).screen_sharer is None
    finally:
        await older.close()


def test_sources_are_microphone_camera_screen_in_m_line_order():
    assert SOURCES == ("audio", "video", "screen")
