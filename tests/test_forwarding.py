# Over 500 lines: the differential tests of every forked aiortc piece share one fake receiver.
"""Forwarding unit tests: a real aiortc RTCRtpReceiver (no network) feeds a Publication the way aiortc's
jitter buffer does, through the tapped decoder queue; the subscribers are real ForwardedTracks.

Only the edge to the network is recorded instead of sent: the receiver's outgoing RTCP (PLI, REMB).
"""

from __future__ import annotations

import asyncio
import datetime
import time
from fractions import Fraction

import av
import pytest
from aiortc import clock
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpReceiveParameters,
    RTCRtpRtxParameters,
)
from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTP_HISTORY_SIZE,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    unpack_remb_fci,
)

from sprechstunde.media.aiortc_fork import check as fork_check
from sprechstunde.media.aiortc_fork import clock as fork_clock
from sprechstunde.media.aiortc_fork import coroutines as fork_coroutines
from sprechstunde.media.aiortc_fork import estimator as fork_estimator
from sprechstunde.media.aiortc_fork import receiver as fork_receiver
from sprechstunde.media.aiortc_fork import sender as fork_sender
from sprechstunde.media.forwarding import KEYFRAME_INTERVAL, QUEUE_BOUND, ForwardingStats, Publication

MEDIA_SSRC = 4242


class Upstream:
    """A real receiver whose RTCP to the publisher is recorded (PLI times, REMB bitrates)."""

    def __init__(self, kind: str = "video") -> None:
        transport = RTCDtlsTransport(
            RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()]
        )
        self.receiver = RTCRtpReceiver(kind, transport)
        self.plis: list[float] = []
        self.rembs: list[int] = []
        self.receiver._send_rtcp_pli = self._pli  # type: ignore[method-assign]
        self.receiver._send_rtcp = self._rtcp  # type: ignore[method-assign]
        # as if the publisher's first packet had arrived: the SSRC a keyframe request names
        self.receiver._RTCRtpReceiver__active_ssrc[MEDIA_SSRC] = clock.current_datetime()
        self.receiver._set_rtcp_ssrc(777)

    async def _pli(self, media_ssrc: int) -> None:
        assert media_ssrc == MEDIA_SSRC
        self.plis.append(time.monotonic())

    async def _rtcp(self, packet: object) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
            assert ssrcs == [MEDIA_SSRC]
            self.rembs.append(bitrate)

    def frame(self, timestamp: int, key: bool, size: int = 50) -> None:
        """One reassembled VP8 picture, handed over exactly as aiortc's receiver does."""
        data = bytes([0x00 if key else 0x01]) + bytes(size)
        queue = getattr(self.receiver, fork_receiver._DECODER_QUEUE)
        queue.put((None, JitterFrame(data, timestamp)))


def vp8_key(data: bytes) -> bool:
    return not data[0] & 0x01


async def drain(track, count: int) -> list:
    return [await asyncio.wait_for(track.recv(), 1) for _ in range(count)]


async def test_newcomer_gets_keyframe_request_and_starts_at_a_keyframe():
    up = Upstream()
    publication = Publication("video", ForwardingStats())
    publication.attach(up.receiver)
    assert up.plis == []  # nobody subscribed yet: nothing asked of the publisher
    track = publication.subscribe()
    await asyncio.sleep(0.01)
    assert len(up.plis) == 1  # asked for a keyframe on subscription, before the newcomer is connected
    reader = asyncio.ensure_future(drain(track, 2))
    await asyncio.sleep(0.05)
    assert len(up.plis) == 1  # its sender starting asks again only after the rate limit
    for index in range(5):
        up.frame(index * 3000, key=False)  # deltas before the keyframe: useless to a newcomer
    up.frame(15000, key=True)
    up.frame(18000, key=False)
    packets = await reader
    assert vp8_key(bytes(packets[0])) and not vp8_key(bytes(packets[1]))
    assert packets[1].pts - packets[0].pts == 3000
    assert publication.stats.frames["video"] == 2
    track.stop()


async def test_keyframe_requests_are_rate_limited_per_publisher():
    up = Upstream()
    publication = Publication("video")
    publication.attach(up.receiver)
    tracks = [publication.subscribe() for _ in range(3)]
    start = time.monotonic()
    # three subscribers report picture loss over and over for 1.2 s
    while time.monotonic() - start < 1.2:
        for track in tracks:
            track.request_keyframe()
        await asyncio.sleep(0.02)
    await asyncio.sleep(KEYFRAME_INTERVAL + 0.1)
    assert 2 <= len(up.plis) <= 4, up.plis
    assert up.plis[0] - start < 0.05  # the first request goes out at once
    gaps = [b - a for a, b in zip(up.plis, up.plis[1:], strict=False)]
    assert min(gaps) >= KEYFRAME_INTERVAL - 0.01, gaps
    publication.close()


async def test_subscriber_that_stops_reading_is_bounded_and_does_not_hold_up_the_others():
    up = Upstream()
    publication = Publication("video")
    publication.attach(up.receiver)
    reading, stalled = publication.subscribe(), publication.subscribe()
    got: list = []

    async def read() -> None:
        while True:
            got.append(await reading.recv())

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(0.01)
    up.plis.clear()
    total = 3 * QUEUE_BOUND["video"]
    for index in range(total):
        up.frame(index * 3000, key=index % 45 == 0)
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert len(got) == total  # the reading subscriber lost nothing
    assert len(stalled._queue) <= QUEUE_BOUND["video"]
    assert stalled.dropped > 0
    await asyncio.sleep(KEYFRAME_INTERVAL)  # the join-time request used up the rate limit
    assert up.plis  # overflow on a delta frame asks the publisher for a fresh keyframe
    # when the stalled subscriber reads again, its first picture is a keyframe
    up.frame(total * 3000, key=True)
    first = await asyncio.wait_for(stalled.recv(), 1)
    assert vp8_key(bytes(first))
    reader.cancel()
    publication.close()


async def test_timestamps_continue_across_a_publisher_restart():
    first, second = Upstream(), Upstream()
    publication = Publication("video")
    publication.attach(first.receiver)
    track = publication.subscribe()
    reader = asyncio.ensure_future(drain(track, 6))
    await asyncio.sleep(0.01)
    for index in range(3):
        first.frame(900_000 + index * 3000, key=index == 0)
    await asyncio.sleep(0.01)
    # the publisher reconnects: a new receiver, its clock restarts near zero
    publication.attach(second.receiver)
    await asyncio.sleep(KEYFRAME_INTERVAL + 0.05)  # the rate limit holds across the reconnect
    assert second.plis  # subscribers are waiting: the new publisher connection is asked for a keyframe
    first.frame(909_000, key=False)  # a straggler from the old connection is dropped
    for index in range(3):
        second.frame(index * 3000, key=index == 0)
    packets = await reader
    pts = [p.pts for p in packets]
    assert pts == sorted(pts) and len(set(pts)) == 6, pts
    assert all(b - a == 3000 for a, b in zip(pts, pts[1:], strict=False)), pts
    publication.close()


async def test_a_media_line_switched_to_another_publisher_carries_on_from_its_keyframe():
    """A subscriber's media line reused for a new participant: same track (aiortc's sender must not
    see it end), timestamps continuing, the new publisher asked for a keyframe, its deltas skipped."""
    first_up, second_up = Upstream(), Upstream()
    first, second = Publication("video"), Publication("video")
    first.attach(first_up.receiver)
    second.attach(second_up.receiver)
    track = first.subscribe()
    reader = asyncio.ensure_future(drain(track, 4))
    await asyncio.sleep(0.01)
    first_up.frame(500_000, key=True)
    first_up.frame(503_000, key=False)
    await asyncio.sleep(0.01)
    first.close()  # the first publisher left: the track is parked, not ended
    assert track.readyState == "live"
    first_up.frame(506_000, key=False)  # nothing reaches a parked track
    track.switch(second)
    await asyncio.sleep(0.01)
    assert second_up.plis  # the new publisher is asked for a keyframe at once
    second_up.frame(7_000, key=False)  # joined mid-picture-group: skipped
    second_up.frame(10_000, key=True)
    second_up.frame(13_000, key=False)
    packets = await reader
    assert [vp8_key(bytes(p)) for p in packets] == [True, False, True, False]
    pts = [p.pts for p in packets]
    assert all(b - a == 3000 for a, b in zip(pts, pts[1:], strict=False)), pts
    second.close()
    track.stop()


async def test_publisher_is_asked_for_no_more_than_the_weakest_subscriber_takes():
    up = Upstream()
    publication = Publication("video")
    publication.attach(up.receiver)
    strong, weak = publication.subscribe(), publication.subscribe()
    assert publication.bitrate_cap() is None
    strong.receiver_estimate(1_500_000)
    await asyncio.sleep(0.01)
    assert up.rembs == [1_500_000]
    weak.receiver_estimate(300_000)
    await asyncio.sleep(0.01)
    assert up.rembs[-1] == 300_000  # a fall reaches the publisher at once
    assert publication.bitrate_cap() == 300_000
    # aiortc's own periodic REMB from the publisher's link is capped as well
    estimator = getattr(up.receiver, fork_receiver._ESTIMATOR)
    estimator._estimator.add = lambda *args: (2_000_000, [MEDIA_SSRC])
    assert estimator.add(arrival_time_ms=0, abs_send_time=0, payload_size=1, ssrc=MEDIA_SSRC) == (
        300_000,
        [MEDIA_SSRC],
    )
    weak.stop()  # the weak subscriber left: the cap follows the remaining one
    assert publication.bitrate_cap() == 1_500_000
    publication.close()


@pytest.mark.parametrize("kind", ["audio", "video"])
async def test_hooks_match_the_installed_aiortc(kind):
    fork_check.check()
    up = Upstream(kind)
    publication = Publication(kind)
    publication.attach(up.receiver)
    assert isinstance(getattr(up.receiver, fork_receiver._DECODER_QUEUE), fork_receiver.FrameTap)


def test_h264_keyframes_are_recognised_in_annex_b():
    """What aiortc's H.264 depayloader hands over is Annex B; an IDR (with its SPS) starts a picture."""
    from fractions import Fraction

    import av

    from sprechstunde.media.forwarding import is_keyframe

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 160, 120, "yuv420p"
    codec.time_base = Fraction(1, 30)
    codec.gop_size = 10
    codec.options = {"tune": "zerolatency", "profile": "baseline", "x264-params": "scenecut=0"}
    packets = []
    for index in range(12):
        frame = av.VideoFrame(160, 120, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(index * 7) % 256]) * plane.buffer_size)
        frame.pts = index
        packets.extend(codec.encode(frame))
    packets.extend(codec.encode(None))
    flags = [is_keyframe("video", bytes(p), "video/h264") for p in packets]
    assert flags == [p.is_keyframe for p in packets]
    assert flags[0] and not all(flags)


async def started(kind: str) -> tuple[Upstream, Publication]:
    """A real receiver, started as the peer connection starts it, feeding a publication."""
    up = Upstream(kind)
    up.receiver._track = RemoteStreamTrack(kind=kind)  # as the peer connection sets it up
    publication = Publication(kind)
    publication.attach(up.receiver)
    if kind == "audio":
        codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
    else:
        codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=111)
    await up.receiver.receive(
        RTCRtpReceiveParameters(
            codecs=[codec], encodings=[RTCRtpDecodingParameters(ssrc=MEDIA_SSRC, payloadType=111)]
        )
    )
    return up, publication


def rtp(number: int, timestamp: int, payload: bytes, marker: bool = False) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=number, timestamp=timestamp, marker=int(marker))
    packet.ssrc = MEDIA_SSRC
    packet.payload = payload
    return packet


async def test_forwarded_audio_is_passed_on_at_once_and_a_lost_packet_not_waited_for():
    """aiortc holds 4 Opus packets before decoding and stalls on a gap; forwarding does neither."""
    up, publication = await started("audio")
    try:
        arrivals = [0, 1, 2, 4, 5, 3, 6]  # 3 comes late (after 4 and 5): too late to pass on
        for index, number in enumerate(arrivals):
            packet = rtp(number, number * 960, bytes([0xFC, number]))
            await up.receiver._handle_rtp_packet(packet, arrival_time_ms=index * 20)
            assert publication.frames_in == min(index + 1, 5 if index < 6 else 6), (index, number)
    finally:
        await up.receiver.stop()


async def test_forwarded_video_frame_is_passed_on_at_its_last_packet():
    """aiortc passes a picture on when the next picture begins; forwarding at the marker bit."""
    up, publication = await started("video")
    got: list = []
    track = publication.subscribe()
    track.set_output_codec("video/VP8")  # what the subscriber's answer settled on
    encoder = Vp8Encoder()
    number = 0
    sent: list[list[bytes]] = []
    try:
        for picture in range(3):
            data = bytes([0x00 if picture == 0 else 0x01]) + bytes(3000)  # ~3 RTP packets each
            packet = av.Packet(data)
            packet.pts, packet.time_base = picture * 3000, Fraction(1, 90000)
            payloads, _ = encoder.pack(packet)
            assert len(payloads) >= 2
            sent.append(payloads)
            for index, payload in enumerate(payloads):
                last = index == len(payloads) - 1
                await up.receiver._handle_rtp_packet(
                    rtp(number, picture * 3000, payload, marker=last), arrival_time_ms=number
                )
                number += 1
                # complete exactly when its last packet is in, before the next picture starts
                assert publication.frames_in == picture + (1 if last else 0)
            got.append(await asyncio.wait_for(track.recv(), 1))
        assert [len(bytes(p)) for p in got] == [3001, 3001, 3001]
        # the subscriber's sender passes the publisher's RTP payloads on (VP8 picture ids and all)
        sender_encoder = fork_sender.PassThrough(Vp8Encoder())
        for frame, payloads in zip(got, sent, strict=True):
            assert sender_encoder.pack(frame) == (payloads, frame.pts)
    finally:
        track.stop()
        await up.receiver.stop()


async def test_padding_packets_are_not_forwarded():
    """A bandwidth probe (an RTP packet with no payload) inside a picture or on its own: the picture
    goes on in its real payloads, and padding alone is not forwarded at all."""
    up, publication = await started("video")
    track = publication.subscribe()
    track.set_output_codec("video/VP8")
    try:
        picture = av.Packet(bytes([0x00]) + bytes(3000))  # a keyframe, ~3 RTP packets
        picture.pts, picture.time_base = 0, Fraction(1, 90000)
        payloads, _ = Vp8Encoder().pack(picture)
        assert len(payloads) >= 2
        arrivals = [(payloads[0], 0), (b"", 0), *((p, 0) for p in payloads[1:]), (b"", 3000)]
        for number, (payload, timestamp) in enumerate(arrivals):
            marker = number == len(arrivals) - 2 or number == len(arrivals) - 1
            await up.receiver._handle_rtp_packet(
                rtp(number, timestamp, payload, marker), arrival_time_ms=number
            )
        frame = await asyncio.wait_for(track.recv(), 1)
        assert frame.payloads == payloads
        assert publication.frames_in == 1  # the lone padding packet was not a frame to forward
    finally:
        track.stop()
        await up.receiver.stop()


def test_pass_through_leaves_what_has_no_payloads_to_aiortcs_encoder():
    """A frame without the publisher's payloads (as H.264 access units are handed over) is packetised
    by aiortc's own packetiser, and aiortc's REMB handling still reaches the real encoder's target
    bitrate (which the no-shared-codec fallback encodes with)."""
    inner = Vp8Encoder()
    encoder = fork_sender.PassThrough(inner)
    data = bytes([0x00]) + bytes(3000)
    packet = av.Packet(data)
    packet.pts, packet.time_base = 6000, Fraction(1, 90000)
    payloads, timestamp = encoder.pack(packet)
    assert timestamp == 6000 and len(payloads) >= 2
    assert b"".join(vp8_depayload(p) for p in payloads) == data
    assert hasattr(encoder, "target_bitrate")
    encoder.target_bitrate = 300_000
    assert inner.target_bitrate == 300_000


def test_remb_to_the_publisher_is_throttled_like_libwebrtc():
    """aiortc's estimator answers every packet while it sees overuse; the publisher gets at most one
    REMB per 200 ms, unless the estimate falls by more than 3 %."""
    up = Upstream()
    publication = Publication("video")
    publication.attach(up.receiver)
    estimator = getattr(up.receiver, fork_receiver._ESTIMATOR)
    values = iter([800_000, 790_000, 780_000, 700_000, 690_000, 900_000])
    estimator._estimator.add = lambda *args: (next(values), [MEDIA_SSRC])

    def add(ms: int):
        return estimator.add(arrival_time_ms=ms, abs_send_time=0, payload_size=1000, ssrc=MEDIA_SSRC)

    sent = [add(0), add(10), add(20), add(30), add(40), add(260)]
    assert [s and s[0] for s in sent] == [800_000, None, None, 700_000, None, 900_000]
    publication.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faster_bitrate_estimator_gives_aiortcs_results(seed):
    """The estimator behind the publisher's REMB is sped up (a third of its time went to a Python
    min() loop, more to a per-millisecond window); on a random arrival trace it answers exactly as
    aiortc's own."""
    import random

    from aiortc.rate import BandwidthUsage, RemoteBitrateEstimator

    rng = random.Random(seed)
    original, fast = RemoteBitrateEstimator(), RemoteBitrateEstimator()
    fork_estimator.speed_up_estimator(fast)
    arrival = sent = 0
    answers = 0
    seen = set()
    for index in range(6000):
        gap = rng.choice([0, 0, 1, 2, 5, 11, 33]) + (rng.random() < 0.01) * rng.randint(100, 1500)
        queueing = (index // 500) % 3 == 2  # now and then the link queues: each packet arrives later
        arrival += gap + queueing * rng.randint(1, 4)
        sent += max(0, gap + rng.randint(-3, 3))
        packet = {
            "arrival_time_ms": arrival,
            "abs_send_time": ((sent << 18) // 1000) & 0xFFFFFF,
            "payload_size": rng.randint(100, 1200),
            "ssrc": rng.choice([1, 1, 2]),
        }
        expected = original.add(**packet)
        assert fast.add(**packet) == expected
        answers += expected is not None
        seen.add(original.detector.hypothesis)
        filters = (original.estimator, fast.estimator)
        kalman = [(e.E, e._offset, e.slope, e.var_noise, e.avg_noise) for e in filters]
        assert kalman[0] == kalman[1]
    assert answers > 50
    assert seen == set(BandwidthUsage)  # normal, overuse and underuse all went through the filter


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faster_nack_bookkeeping_gives_aiortcs_results(seed):
    """The receiver's list of packets to NACK, sped up: on a random trace with loss, reordering,
    duplicates, jumps and wrap-around it sends exactly aiortc's NACKs and remembers the same gaps (plus,
    for at most NACK_TRIM_EVERY packets, some that fell out of the history and are never asked for)."""
    import random

    from aiortc.rtcrtpreceiver import NackGenerator

    rng = random.Random(seed)
    original, fast = NackGenerator(), fork_receiver._FastNackGenerator()
    number = rng.randint(0, 65535)
    recent: list[int] = []
    missed = 0
    for _ in range(20000):
        roll = rng.random()
        if roll < 0.05 and recent:
            sequence = rng.choice(recent)  # late or duplicate
        elif roll < 0.06:
            number = (number + rng.randint(2, 400)) & 0xFFFF  # a burst lost
            sequence = number
        else:
            number = (number + (2 if rng.random() < 0.03 else 1)) & 0xFFFF
            sequence = number
        recent = (recent + [sequence])[-50:]
        packet = rtp(sequence, 0, b"x")
        expected = original.add(packet)
        assert fast.add(packet) == expected
        assert fast.max_seq == original.max_seq
        if expected:  # a NACK goes out now: the very list aiortc sends
            assert sorted(fast.missing) == sorted(original.missing)
        else:
            oldest = (fast.max_seq - RTP_HISTORY_SIZE) & 0xFFFF
            stale = {seq for seq in fast.missing if 0 < (oldest - seq) & 0xFFFF < 0x8000}
            assert fast.missing - stale == original.missing
            assert len(fast.missing) <= len(original.missing) + fork_receiver.NACK_TRIM_EVERY
        missed += expected
    assert missed > 100


def test_transport_clock_matches_aiortcs():
    """The cheaper clock gives aiortc's values (ms since 1900, 64-bit NTP, the time within 10 ms)."""
    ms, ntp = fork_clock._current_ms(), fork_clock._current_ntp_time()
    coarse = fork_clock._current_datetime()
    now = datetime.datetime.now(datetime.UTC)  # aiortc's own formulas from here
    assert abs(ms - int((now - clock.NTP_EPOCH).total_seconds() * 1000)) <= 2
    reference = clock.datetime_to_ntp(now)
    assert abs(ntp - reference) < (1 << 32) // 100  # within 10 ms
    assert (
        coarse.tzinfo is not None and abs((now - coarse).total_seconds()) <= fork_clock.DATETIME_STEP + 0.002
    )


async def test_a_handler_that_has_to_wait_is_finished_by_a_task():
    """`run_now` runs a packet handler to its end in the caller; one that waits is carried on."""
    steps: list[str] = []
    gate = asyncio.get_running_loop().create_future()

    async def quick() -> None:
        steps.append("quick")

    async def waiting() -> None:
        steps.append("before")
        steps.append(await gate)

    fork_coroutines.run_now(quick())
    assert steps == ["quick"]
    fork_coroutines.run_now(waiting())
    assert steps == ["quick", "before"]
    gate.set_result("after")
    for _ in range(3):
        await asyncio.sleep(0)
    assert steps == ["quick", "before", "after"]


def test_estimate_falls_during_overuse_at_libwebrtcs_pace():
    """While the link from the publisher queues up, aiortc's estimator recomputes on every packet;
    the publisher's estimator lowers its estimate as libwebrtc does: at most once per 200 ms."""
    from aiortc.rate import RemoteBitrateEstimator

    def feed(estimator: RemoteBitrateEstimator) -> list[tuple[int, int]]:
        """Bursts of 3 packets every 10 ms for 10 s; after 8 s each packet waits 1.5 ms longer."""
        answers = []
        for index in range(3000):
            sent_ms = (index // 3) * 10
            arrival_ms = int(sent_ms + 5 + max(0, index - 2400) * 1.5)
            answer = estimator.add(
                arrival_time_ms=arrival_ms, abs_send_time=((sent_ms << 18) // 1000) & 0xFFFFFF,
                payload_size=1100, ssrc=MEDIA_SSRC,
            )  # fmt: skip
            if answer is not None:
                answers.append((arrival_ms, answer[0]))
        return answers

    unpaced, paced = RemoteBitrateEstimator(), RemoteBitrateEstimator()
    fork_estimator.speed_up_estimator(unpaced)
    fork_estimator.speed_up_estimator(paced, paced_decrease=True)
    before, after = feed(unpaced), feed(paced)
    assert before[:3] == after[:3]  # the same until the queue builds
    assert len([t for t, _ in before if t > 8000]) > 500  # aiortc: nearly every packet of the overuse
    overuse = [(t, bitrate) for t, bitrate in after if t > 8000]
    times = [t for t, _ in overuse]
    assert 5 <= len(overuse) <= 15
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 200
    assert overuse[-1][1] < 0.8 * overuse[0][1]  # and it does come down


RTX_SSRC = 4343


async def video_receiver(lean: bool) -> tuple[RTCRtpReceiver, list, list]:
    """A started video receiver (VP8 + RTX) tapped for forwarding: with aiortc's own per-packet handler
    (`lean=False`) or the forwarding one. Returns it, the frames it hands on and the feedback it sends."""
    transport = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    receiver = RTCRtpReceiver("video", transport)
    frames: list = []
    feedback: list[bytes] = []

    async def send_rtcp(packet: object) -> None:
        if isinstance(packet, (RtcpPsfbPacket, RtcpRtpfbPacket)):  # not the randomly timed reports
            feedback.append(bytes(packet))

    receiver._send_rtcp = send_rtcp  # type: ignore[method-assign]
    receiver._set_rtcp_ssrc(777)
    receiver._track = RemoteStreamTrack(kind="video")
    fork_receiver.tap_receiver(
        receiver,
        lambda codec, f: frames.append((codec.mimeType, f.timestamp, f.data, f.payloads)),
        prompt=True,
    )
    if not lean:
        del receiver._handle_rtp_packet, receiver._handle_packet_now  # back to aiortc's method
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96})
    await receiver.receive(
        RTCRtpReceiveParameters(
            codecs=[vp8, rtx],
            encodings=[
                RTCRtpDecodingParameters(
                    ssrc=MEDIA_SSRC, payloadType=96, rtx=RTCRtpRtxParameters(ssrc=RTX_SSRC)
                )
            ],
        )
    )
    return receiver, frames, feedback


@pytest.mark.parametrize("seed", [0, 1])
async def test_forwarding_receiver_hands_on_what_aiortcs_would(seed):
    """The forwarding receiver's per-packet handler (no coroutine per packet) against aiortc's own, on
    a random VP8 trace with loss, reordering, duplicates and RTX retransmissions: the same frames, in
    the same order, and the same NACKs, PLIs and REMBs to the publisher."""
    import random

    rng = random.Random(seed)
    encoder = Vp8Encoder()
    trace: list[tuple[int, int, int, bytes, int, int]] = []  # (ssrc, pt, seq, payload, marker, ts)
    number = rng.randint(0, 65535)
    for picture in range(150):
        data = bytes([0x00 if picture % 40 == 0 else 0x01]) + rng.randbytes(rng.choice([300, 2500, 6000]))
        packet = av.Packet(data)
        packet.pts, packet.time_base = picture * 3000, Fraction(1, 90000)
        payloads, _ = encoder.pack(packet)
        for index, payload in enumerate(payloads):
            trace.append((MEDIA_SSRC, 96, number, payload, int(index == len(payloads) - 1), picture * 3000))
            number = (number + 1) & 0xFFFF
    arrivals: list[tuple[int, int, int, bytes, int, int]] = []
    rtx_number = 0
    for entry in trace:
        roll = rng.random()
        if roll < 0.04:  # lost; retransmitted over RTX a few packets later, or (rarely) never
            if rng.random() < 0.97:
                ssrc, _, seq, payload, marker, ts = entry
                resent = (RTX_SSRC, 97, rtx_number, seq.to_bytes(2, "big") + payload, marker, ts)
                rtx_number += 1
                arrivals.insert(len(arrivals) + rng.randint(1, 6), resent)
            continue
        if roll < 0.07 and arrivals:  # reordered
            arrivals.insert(len(arrivals) - 1, entry)
            continue
        arrivals.append(entry)
        if roll < 0.1:
            arrivals.append(entry)  # duplicated

    ours, theirs = await video_receiver(lean=True), await video_receiver(lean=False)
    try:
        for index, (ssrc, pt, seq, payload, marker, ts) in enumerate(arrivals):
            for receiver, _, _ in (ours, theirs):
                packet = RtpPacket(
                    payload_type=pt, marker=marker, sequence_number=seq, timestamp=ts, ssrc=ssrc
                )
                packet.payload = payload
                packet.extensions.abs_send_time = ((index * 11) << 18) // 1000 & 0xFFFFFF
                await receiver._handle_rtp_packet(packet, arrival_time_ms=index * 11)
        assert ours[1] == theirs[1] and len(ours[1]) > 50
        assert ours[2] == theirs[2] and ours[2]  # NACKs (and any PLI, REMB) byte for byte
    finally:
        await ours[0].stop()
        await theirs[0].stop()
