"""Real aiortc peers call each other through the server's forwarding SFU: media flows, a late joiner
sees a picture at once, loss is repaired by retransmission, REMB reaches the publisher, a stalled
subscriber holds up nobody."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from aiortc.codecs import vpx
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

from sprechstunde.media.aiortc_fork import estimator as fork_estimator
from sprechstunde.media.aiortc_fork import receiver as fork_receiver
from sprechstunde.media.aiortc_fork import sender as fork_sender
from sprechstunde.media.forwarding import QUEUE_BOUND
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant


def only_video_codec(sdp: str, mime: str) -> str:
    """The offer as a client knowing only one video codec understands it: other video payload types
    (and their RTX) removed from every video m-line."""
    name = mime.split("/", 1)[1].lower()
    sections = re.split(r"(?=^m=)", sdp, flags=re.M)
    out = []
    for section in sections:
        if not section.startswith("m=video"):
            out.append(section)
            continue
        rtpmap = dict(re.findall(r"^a=rtpmap:(\d+) ([^/\r\n]+)", section, flags=re.M))
        keep = {pt for pt, codec in rtpmap.items() if codec.lower() == name}
        for pt, apt in re.findall(r"^a=fmtp:(\d+) apt=(\d+)", section, flags=re.M):
            if apt in keep:
                keep.add(pt)
        lines = section.splitlines(keepends=True)
        header = lines[0].split()
        lines[0] = " ".join(header[:3] + [pt for pt in header[3:] if pt in keep]) + "\r\n"
        kept = [
            line
            for line in lines[1:]
            if not (m := re.match(r"a=(?:rtpmap|fmtp|rtcp-fb):(\d+)", line)) or m.group(1) in keep
        ]
        out.append("".join([lines[0], *kept]))
    return "".join(out)


class TimedParticipant(RtcParticipant):
    """Also notes when each remote video first decoded and when the first offer announced video."""

    def __init__(self, *args: Any, video_codec: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.video_codec = video_codec  # e.g. "video/H264": a client that offers nothing else
        self.video_offer_at: float | None = None
        self.first_decoded: list[float] = []
        self.video_frames: dict[str, int] = {}  # remote video track id → frames decoded

    async def _answer(self, offer: dict[str, Any]) -> None:
        if self.video_offer_at is None and any(
            s.get("kind") == "video" for s in offer.get("streams", {}).values()
        ):
            self.video_offer_at = time.monotonic()
        if self.video_codec is None:
            return await super()._answer(offer)
        # a client that has no other video codec: it sees the server's offer without the rest
        return await super()._answer({**offer, "sdp": only_video_codec(offer["sdp"], self.video_codec)})

    def received_codecs(self) -> set[str]:
        """The codecs of the remote videos this client receives, as negotiated."""
        assert self.pc is not None
        return {
            fork_sender.negotiated_codec(t)
            for t in self.pc.getTransceivers()
            if t.kind == "video" and t.receiver.track is not None and t.sender.track is None
        }

    async def _consume(self, track: MediaStreamTrack) -> None:
        if track.kind != "video":
            return await super()._consume(track)
        self.video_frames[track.id] = 0
        try:
            while True:
                await track.recv()
                if self.video_frames[track.id] == 0:
                    self.first_decoded.append(time.monotonic())
                self.video_frames[track.id] += 1
                self.frames["video"] += 1
        except (MediaStreamError, asyncio.CancelledError):
            pass

    def receivers(self, kind: str) -> list:
        assert self.pc is not None
        return [t.receiver for t in self.pc.getTransceivers() if t.kind == kind]

    def senders(self, kind: str) -> list:
        assert self.pc is not None
        return [t.sender for t in self.pc.getTransceivers() if t.kind == kind and t.sender.track]


@pytest.fixture
async def room_tokens(services):
    room = await services.rooms.create("vhs", 3600)
    return {
        role: token_of(services.rooms.link(room, role, "http://test"))
        for role in ("citizen", "advisor", "guest")
    }


@pytest.fixture
async def participant(client, room_tokens):
    """Makes participants for the room's links (by role) and closes them after the test."""
    made: list[TimedParticipant] = []

    def make(role: str, name: str, **kwargs: Any) -> TimedParticipant:
        url = str(client.make_url("/ws"))
        made.append(TimedParticipant(client.session, url, room_tokens[role], name, **kwargs))
        return made[-1]

    yield make
    for p in made:
        await p.close()


async def call(
    participant, citizen_codec: str | None = None, advisor_codec: str | None = None
) -> tuple[TimedParticipant, TimedParticipant]:
    citizen = participant("citizen", "Bürgerin", video_codec=citizen_codec)
    advisor = participant("advisor", "Berater", video_codec=advisor_codec)
    await citizen.join()
    await advisor.join()
    await asyncio.gather(citizen.wait_frames(video=10, audio=10), advisor.wait_frames(video=10, audio=10))
    return citizen, advisor


def server_peer(services, who: RtcParticipant):
    room = services.hub.rooms[who.welcome["room_id"]]
    return room.media._peers[who.welcome["participant_id"]]


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
    # … and sent each frame as it arrived, without waking the subscriber's sender task for it
    outputs = [t.sender.track._output for t in server_peer(services, citizen)._downlink.values()]
    assert len(outputs) == 2 and all(o is not None for o in outputs)
    assert all(o.pushed > 10 * max(1, o.pulled) for o in outputs), [(o.pushed, o.pulled) for o in outputs]


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


async def test_late_joiner_decodes_both_others_within_a_second(participant):
    await call(participant)
    await asyncio.sleep(1.0)  # well into the publishers' keyframe intervals
    interpreter = participant("guest", "Dolmetscherin", tracks=[])
    await interpreter.join()
    await interpreter.wait_frames(video=2, audio=5)
    for _ in range(50):
        if len(interpreter.first_decoded) == 2:
            break
        await asyncio.sleep(0.05)
    assert interpreter.video_offer_at is not None
    delays = [t - interpreter.video_offer_at for t in interpreter.first_decoded]
    assert len(delays) == 2 and max(delays) < 1.0, delays


async def test_lost_packets_are_retransmitted_by_the_server_from_its_history(participant, services):
    citizen, advisor = await call(participant)
    dropped: list[int] = []
    repaired: list[int] = []
    for receiver in citizen.receivers("video"):
        rtx_ssrcs = getattr(receiver, fork_receiver._RTX_SSRC)
        original = receiver._handle_rtp_packet
        seen: set[tuple[int, int]] = set()

        async def lossy(packet, arrival_time_ms, original=original, rtx_ssrcs=rtx_ssrcs, seen=seen):
            if packet.ssrc in rtx_ssrcs:
                repaired.append(packet.ssrc)
            elif packet.sequence_number % 10 == 7 and (packet.ssrc, packet.sequence_number) not in seen:
                seen.add((packet.ssrc, packet.sequence_number))
                dropped.append(packet.sequence_number)  # lost on the way, the first time only
                return
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = lossy
    before = citizen.frames["video"]
    await asyncio.sleep(3.0)
    assert len(dropped) >= 5, dropped
    # aiortc's RTCRtpSender keeps a per-sender history of what it sent (pre-encoded frames included)
    # and answers the subscriber's NACKs with RTX: nearly every lost packet came back
    assert len(repaired) >= 0.8 * len(dropped), (len(repaired), len(dropped))
    assert citizen.frames["video"] - before >= 60, citizen.frames["video"] - before


async def test_subscriber_estimate_limits_what_the_publisher_is_asked_to_send(participant, services):
    citizen, advisor = await call(participant)
    (video_sender,) = advisor.senders("video")
    seen: list[int] = []
    original = video_sender._handle_rtcp_packet

    async def record(packet):
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            seen.append(unpack_remb_fci(packet.fci)[0])
        await original(packet)

    video_sender._handle_rtcp_packet = record
    # the citizen's link takes only 150 kbit/s of the advisor's video: it says so with a REMB
    for receiver in citizen.receivers("video"):
        await fork_estimator.send_publisher_estimate(receiver, 150_000)
    for _ in range(40):
        if any(bitrate <= 150_000 for bitrate in seen):
            break
        await asyncio.sleep(0.05)
    assert any(bitrate <= 150_000 for bitrate in seen), seen
    # aiortc's encoder at the advisor follows REMB down to its own floor: it encodes for the weak link
    encoder = video_sender._RTCRtpSender__encoder
    assert encoder.target_bitrate == max(150_000, vpx.MIN_BITRATE) < vpx.DEFAULT_BITRATE


async def test_subscriber_that_stops_reading_does_not_slow_the_others(participant, services):
    citizen, advisor = await call(participant)
    interpreter = participant("guest", "Dolmetscherin", tracks=[])
    await interpreter.join()
    await interpreter.wait_frames(video=5, audio=5)
    # everything the server sends to the interpreter now blocks, as if its link had stopped (sends
    # are awaited, as on a TURN-relayed pair, not written straight to the socket)
    transport = server_peer(services, interpreter).pc.getTransceivers()[0].sender.transport
    stuck = asyncio.Event()

    async def blocked(data: bytes) -> None:
        await stuck.wait()

    transport._send_rtp = blocked
    transport._direct_pair = lambda: None
    try:
        await asyncio.sleep(0.5)
        before = (citizen.frames["video"], advisor.frames["video"])
        await asyncio.sleep(3.0)
        gained = (citizen.frames["video"] - before[0], advisor.frames["video"] - before[1])
        assert min(gained) >= 60, gained  # aiortc's test source sends 30 fps; nobody waits for the guest
        tracks = [t.sender.track for t in server_peer(services, interpreter)._downlink.values()]
        video = [t for t in tracks if t.kind == "video"]
        assert video and all(len(t._queue) <= QUEUE_BOUND["video"] for t in video)
        assert any(t.dropped > 0 for t in video)
    finally:
        stuck.set()


async def test_a_subscriber_whose_sending_fails_does_not_cost_the_others_frames(
    participant, services, caplog
):
    """Frames go out from the publisher's packet handler: an error sending to one subscriber (its socket
    gone) is logged once and costs only that subscriber its frames."""
    citizen, advisor = await call(participant)
    interpreter = participant("guest", "Dolmetscherin", tracks=[])
    await interpreter.join()
    await interpreter.wait_frames(video=5, audio=5)
    transport = server_peer(services, interpreter).pc.getTransceivers()[0].sender.transport

    def broken(data: bytes, protocol: object, address: object) -> None:
        raise OSError("socket gone")

    transport._send_direct = broken
    before = (citizen.frames["video"], advisor.frames["video"])
    await asyncio.sleep(3.0)
    gained = (citizen.frames["video"] - before[0], advisor.frames["video"] - before[1])
    assert min(gained) >= 60, gained  # 30 fps each: none of theirs lost to the interpreter's failure
    assert caplog.text.count("forwarding to a subscriber failed") <= 4  # once per stream, not per frame


def forwarded_tracks(services, who: RtcParticipant) -> list:
    """The server-side tracks sending others' video to `who`."""
    peer = server_peer(services, who)
    return [t.sender.track for (_, kind), t in peer._downlink.items() if kind == "video"]


async def test_h264_only_clients_get_h264_passed_through(participant, services, caplog):
    citizen, advisor = await call(participant, citizen_codec="video/H264", advisor_codec="video/H264")
    await asyncio.gather(citizen.wait_frames(video=30, audio=30), advisor.wait_frames(video=30, audio=30))
    assert citizen.received_codecs() == advisor.received_codecs() == {"video/H264"}
    tracks = forwarded_tracks(services, citizen) + forwarded_tracks(services, advisor)
    assert len(tracks) == 2
    assert all(t._publication.mime == "video/h264" and not t.encodes_here for t in tracks)
    assert all(t._decoder is None for t in tracks)  # nothing was decoded on the server
    assert "no shared video codec" not in caplog.text


async def test_vp8_and_h264_clients_mixed_get_their_codec_passed_through(participant, services, caplog):
    # the citizen's browser offers only H.264, the advisor's both: both send and receive H.264 as sent
    citizen = participant("citizen", "Bürgerin", video_codec="video/H264")
    await citizen.join()
    for _ in range(100):  # the citizen's answer told the server what it can take
        if server_peer(services, citizen).video_codecs:
            break
        await asyncio.sleep(0.02)
    advisor = participant("advisor", "Berater")
    await advisor.join()
    await asyncio.gather(citizen.wait_frames(video=30, audio=30), advisor.wait_frames(video=30, audio=30))
    assert citizen.received_codecs() == {"video/H264"}
    assert advisor.received_codecs() == {"video/H264"}
    tracks = forwarded_tracks(services, citizen) + forwarded_tracks(services, advisor)
    assert not any(t.encodes_here for t in tracks)
    assert "no shared video codec" not in caplog.text


async def test_participants_without_a_shared_codec_are_transcoded_and_the_server_logs_it(
    participant, services, caplog
):
    caplog.set_level("WARNING", logger="sprechstunde.media.forwarding")
    citizen, advisor = await call(participant, citizen_codec="video/H264", advisor_codec="video/VP8")
    await asyncio.gather(citizen.wait_frames(video=30, audio=30), advisor.wait_frames(video=30, audio=30))
    assert citizen.received_codecs() == {"video/H264"}
    assert advisor.received_codecs() == {"video/VP8"}
    (to_citizen,) = forwarded_tracks(services, citizen)
    (to_advisor,) = forwarded_tracks(services, advisor)
    assert to_citizen.encodes_here and to_citizen._publication.mime == "video/vp8"
    assert to_advisor.encodes_here and to_advisor._publication.mime == "video/h264"
    assert "no shared video codec: decoding video/vp8 and re-encoding it as video/h264" in caplog.text
    assert "no shared video codec: decoding video/h264 and re-encoding it as video/vp8" in caplog.text


@pytest.fixture
async def transcode_room(aiohttp_client, tmp_path):
    """An in-process server in `--media-mode transcode` (the benchmark's baseline) with one room:
    (test client, services, room)."""
    from sprechstunde.web.core.app import create_app
    from sprechstunde.web.core.config import Config
    from sprechstunde.web.core.services import SERVICES

    config = Config(
        data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False, media_mode="transcode"
    )
    client = await aiohttp_client(create_app(config))
    services = client.app[SERVICES]
    return client, services, await services.rooms.create("vhs", 3600)


async def test_transcode_mode_still_carries_a_call_and_a_late_joiner(transcode_room):
    """`--media-mode transcode` (the benchmark's baseline): aiortc decodes and re-encodes."""
    client, services, room = transcode_room
    url = str(client.make_url("/ws"))
    people = [
        TimedParticipant(client.session, url, token_of(services.rooms.link(room, role, "http://t")), role)
        for role in ("citizen", "advisor")
    ]
    try:
        for person in people:
            await person.join()
        await asyncio.gather(*(p.wait_frames(video=15, audio=15) for p in people))
        guest = TimedParticipant(
            client.session, url, token_of(services.rooms.link(room, "guest", "http://t")), "g", tracks=[]
        )
        people.append(guest)
        await guest.join()
        await guest.wait_frames(video=10, audio=10)
        assert len(guest.video_frames) == 2 and all(guest.video_frames.values())
    finally:
        for person in people:
            await person.close()


async def test_transcode_mode_does_not_pile_up_pictures_while_someone_is_alone(transcode_room):
    """An advisor waiting alone in transcode mode: aiortc decodes their camera into the track's unbounded
    queue; without a reader that grew by every picture (some 14 MB a second at 640×480)."""
    client, services, room = transcode_room
    url = str(client.make_url("/ws"))
    advisor = TimedParticipant(
        client.session, url, token_of(services.rooms.link(room, "advisor", "http://t")), "a"
    )
    try:
        await advisor.join()
        uplink = server_peer(services, advisor)._uplink["video"].receiver
        deadline = time.monotonic() + 10
        while True:
            stats = [s for s in (await uplink.getStats()).values() if s.type == "inbound-rtp"]
            if stats and stats[0].packetsReceived > 100:
                break
            assert time.monotonic() < deadline, "no video reached the server"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # some 60 pictures at 30 a second
        assert uplink.track._queue.qsize() < 10, uplink.track._queue.qsize()
    finally:
        await advisor.close()


async def test_a_second_interpreter_reuses_the_first_ones_media_lines(participant, services):
    citizen, advisor = await call(participant)
    first = participant("guest", "Dolmetscher A")
    await first.join()
    await first.wait_frames(video=5, audio=5)
    await citizen.wait_for("participant-joined")
    await first.send({"type": "leave", "id": "bye"})
    await citizen.wait_for("participant-left")
    await asyncio.sleep(0.5)
    before = dict(citizen.video_frames)
    second = participant("guest", "Dolmetscherin B")
    await second.join()
    await second.wait_frames(video=5, audio=5)
    await asyncio.sleep(2.0)
    # the citizen receives the second interpreter on the m-lines the first one used, and decodes it
    grown = {t: n - before.get(t, 0) for t, n in citizen.video_frames.items()}
    assert len([n for n in grown.values() if n >= 30]) == 2, (before, citizen.video_frames)
    peer = server_peer(services, citizen)
    # own uplink (microphone, camera, screen) + advisor + one interpreter's pair
    assert len(peer.pc.getTransceivers()) == 3 + 2 * 2
