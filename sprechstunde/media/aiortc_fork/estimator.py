"""The remote bitrate estimator of a published video track's receiver: aiortc's, faster, capped, paced.

aiortc's receiver runs a `RemoteBitrateEstimator` on every video packet and sends the publisher a REMB
(receiver estimated maximum bitrate) whenever it has an answer. Its filter, grouping and rate window are
swapped for subclasses with the same results in fewer steps (`speed_up_estimator`, checked against
aiortc's in tests/test_forwarding.py); for forwarding the estimate is also capped at what the weakest
subscriber takes and throttled as libwebrtc does (`cap_publisher_estimate`). Per instance.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc.rate import (
    BURST_DELTA_THRESHOLD_MS,
    DELTA_COUNTER_MAX,
    MIN_FRAME_PERIOD_HISTORY_LENGTH,
    TIMESTAMP_TO_MS,
    BandwidthUsage,
    InterArrival,
    InterArrivalDelta,
    OveruseEstimator,
    RateBucket,
    RateCounter,
    RemoteBitrateEstimator,
    TimestampGroup,
)
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from sprechstunde.media.aiortc_fork.receiver import _ESTIMATOR, _RTCP_SSRC, _remb, media_ssrc

RATE_WINDOW_MS, RATE_SCALE = 1000, 8000  # RemoteBitrateEstimator's incoming_bitrate = RateCounter(1000, 8000)

MIRRORS = {
    "aiortc.rate:RemoteBitrateEstimator": "subclassed by _FastRemoteBitrateEstimator (add mirrored)",
    "aiortc.rate:OveruseEstimator": "subclassed by _FastOveruseEstimator (update mirrored)",
    "aiortc.rate:InterArrival": "subclassed by _FastInterArrival (compute_deltas mirrored)",
    "aiortc.rate:RateCounter": "subclassed by _FastRateCounter (the same sums)",
    "aiortc.rate:RateBucket": "the totals _FastRateCounter keeps",
    "aiortc.rate:AimdRateControl": "its fields are read for libwebrtc's pace of decreases",
    "aiortc.rate:TimestampGroup": "built by _FastInterArrival",
    "aiortc.rate:InterArrivalDelta": "built by _FastInterArrival",
}


REMB_INTERVAL_MS = 200  # as libwebrtc's REMB throttle: at most one per 200 ms …
REMB_DROP = 0.97  # … unless the estimate fell by more than 3 %


class _CappedEstimator:
    """aiortc's remote bitrate estimator, with what it tells the publisher limited by `cap()` and
    throttled.

    aiortc sends a REMB for every packet while its detector sees overuse, which on a busy server is
    most of the time: hundreds of RTCP packets per second, each encrypted and sent, and a large share
    of the forwarding CPU (measured with bench/media_relay.py --profile).
    """

    def __init__(self, estimator: Any, cap: Callable[[], int | None]) -> None:
        self._estimator = estimator
        self._cap = cap
        self.last: int | None = None  # the uncapped estimate of the link from the publisher
        self._sent: int | None = None
        self._sent_at = 0

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        remb = self._estimator.add(arrival_time_ms, abs_send_time, payload_size, ssrc)
        if remb is None:
            return None
        bitrate, ssrcs = remb
        self.last = bitrate
        cap = self._cap()
        if cap is not None:
            bitrate = min(bitrate, cap)
        if (
            self._sent is not None
            and arrival_time_ms - self._sent_at < REMB_INTERVAL_MS
            and bitrate >= self._sent * REMB_DROP
        ):
            return None
        self._sent, self._sent_at = bitrate, arrival_time_ms
        return bitrate, ssrcs


class _FastOveruseEstimator(OveruseEstimator):
    """aiortc's Kalman filter with the same results, its smallest-frame-period search done by one
    built-in `min` instead of sixty Python calls per packet (a third of the estimator's time), and its
    2×2 matrix algebra written out on floats instead of building seven small lists per update."""

    def update(
        self,
        time_delta_ms: int,
        timestamp_delta_ms: float,
        size_delta: int,
        current_hypothesis: BandwidthUsage,
        now_ms: int,
    ) -> None:
        # aiortc's OveruseEstimator.update, term for term (h = [size_delta, 1.0]), so every float matches
        min_frame_period = self.update_min_frame_period(timestamp_delta_ms)
        t_ts_delta = time_delta_ms - timestamp_delta_ms
        h0 = size_delta
        self._num_of_deltas = min(self._num_of_deltas + 1, DELTA_COUNTER_MAX)
        E = self.E
        noise0, noise1 = self.process_noise
        e00 = E[0][0] + noise0
        e01 = E[0][1]
        e10 = E[1][0]
        e11 = E[1][1] + noise1
        offset = self._offset
        if (current_hypothesis is BandwidthUsage.OVERUSING and offset < self.previous_offset) or (
            current_hypothesis is BandwidthUsage.UNDERUSING and offset > self.previous_offset
        ):
            e11 += 10 * noise1
        eh0 = e00 * h0 + e01 * 1.0
        eh1 = e10 * h0 + e11 * 1.0
        residual = t_ts_delta - self.slope * h0 - offset
        if current_hypothesis is BandwidthUsage.NORMAL:
            max_residual = 3.0 * math.sqrt(self.var_noise)
            if abs(residual) < max_residual:
                self.update_noise_estimate(residual, min_frame_period)
            else:
                self.update_noise_estimate(-max_residual if residual < 0 else max_residual, min_frame_period)
        denom = self.var_noise + h0 * eh0 + 1.0 * eh1
        k0 = eh0 / denom
        k1 = eh1 / denom
        ikh00, ikh01 = 1.0 - k0 * h0, -k0 * 1.0
        ikh10, ikh11 = -k1 * h0, 1.0 - k1 * 1.0
        E[0][0] = e00 * ikh00 + e10 * ikh01
        E[0][1] = e01 * ikh00 + e11 * ikh01
        E[1][0] = e00 * ikh10 + e10 * ikh11
        E[1][1] = e01 * ikh10 + e11 * ikh11
        self.previous_offset = offset
        self.slope += k0 * residual
        self._offset = offset + k1 * residual

    def update_min_frame_period(self, ts_delta: float) -> float:
        history = self.ts_delta_hist
        if len(history) >= MIN_FRAME_PERIOD_HISTORY_LENGTH:
            history.pop(0)
        smallest = min(min(history), ts_delta) if history else ts_delta
        history.append(ts_delta)
        return smallest


class _FastRateCounter(RateCounter):
    """aiortc's 1-ms-bucket rate counter with the same sums, kept as a queue of (ms, bytes) per packet:
    moving the window forward then costs a step per expired packet, not one per elapsed millisecond."""

    def reset(self) -> None:
        self._entries: deque[tuple[int, int]] = deque()
        self._origin_index = 0
        self._origin_ms = None
        self._total = RateBucket()

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        self._entries.append((now_ms, value))
        self._total.count += 1
        self._total.value += value

    def active(self, now_ms: int) -> bool:
        """`rate(now_ms) is not None`, without working out the rate."""
        if self._origin_ms is None:
            return False
        self._erase_old(now_ms)
        return self._total.count > 0 and now_ms > self._origin_ms

    def _erase_old(self, now_ms: int) -> None:
        new_origin_ms = now_ms - self._window_size + 1
        if self._origin_ms is not None and self._origin_ms < new_origin_ms:
            entries, total = self._entries, self._total
            while entries and entries[0][0] < new_origin_ms:
                total.count -= 1
                total.value -= entries.popleft()[1]
            self._origin_ms = new_origin_ms


class _FastInterArrival(InterArrival):
    """aiortc's grouping of packets into send-time bursts, with the same results, its four helper
    calls and modular comparisons inlined (it runs for every video packet)."""

    def compute_deltas(self, timestamp: int, arrival_time: int, packet_size: int) -> InterArrivalDelta | None:
        current = self.current_group
        deltas = None
        if current is None:
            current = self.current_group = TimestampGroup(timestamp)
        else:
            since_first = (timestamp - current.first_timestamp) & 0xFFFFFFFF
            if since_first >= 0x80000000:
                return None  # out of order
            since_last = (timestamp - current.last_timestamp) & 0xFFFFFFFF
            since_last_ms = round(self.timestamp_to_ms * since_last)
            arrival_delta = arrival_time - current.arrival_time
            burst = since_last_ms == 0 or (
                arrival_delta - since_last_ms < 0 and arrival_delta <= BURST_DELTA_THRESHOLD_MS
            )
            if not burst and since_first > self.group_length:
                previous = self.previous_group
                if previous is not None:
                    deltas = InterArrivalDelta(
                        timestamp=(current.last_timestamp - previous.last_timestamp) & 0xFFFFFFFF,
                        arrival_time=current.arrival_time - previous.arrival_time,
                        size=current.size - previous.size,
                    )
                self.previous_group = current
                current = self.current_group = TimestampGroup(timestamp=timestamp)
            elif 0 < since_last < 0x80000000:
                current.last_timestamp = timestamp
        current.size += packet_size
        current.arrival_time = arrival_time
        return deltas


class _FastRemoteBitrateEstimator(RemoteBitrateEstimator):
    """aiortc's `RemoteBitrateEstimator.add` with the same results and fewer calls per packet.

    With `paced_decrease`, it also lowers its estimate during overuse as libwebrtc does (its
    `TimeToReduceFurther`): at most once per round trip (10–200 ms), sooner only when the incoming rate
    fell below half the estimate. aiortc recomputes it on every packet while the detector reports
    overuse, which on a busy server is most packets, and each recomputation also pulls its average of
    the link's peak towards the current rate.
    """

    paced_decrease = False

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        self.ssrcs[ssrc] = arrival_time_ms
        incoming = self.incoming_bitrate
        if incoming.active(arrival_time_ms):
            self.incoming_bitrate_initialized = True
        elif self.incoming_bitrate_initialized:
            incoming.reset()
            self.incoming_bitrate_initialized = False
        incoming.add(payload_size, arrival_time_ms)
        detector = self.detector
        deltas = self.inter_arrival.compute_deltas(abs_send_time << 8, arrival_time_ms, payload_size)
        if deltas is not None:
            timestamp_delta_ms = deltas.timestamp * TIMESTAMP_TO_MS
            estimator = self.estimator
            estimator.update(
                deltas.arrival_time, timestamp_delta_ms, deltas.size, detector.hypothesis, arrival_time_ms
            )
            detector.detect(estimator._offset, timestamp_delta_ms, estimator._num_of_deltas, arrival_time_ms)
        last = self.last_update_ms
        if (
            last is None
            or arrival_time_ms - last > self.rate_control.feedback_interval()
            or (
                detector.hypothesis is BandwidthUsage.OVERUSING
                and (not self.paced_decrease or self._time_to_reduce_further(arrival_time_ms))
            )
        ):
            rate = incoming.rate(arrival_time_ms)
            target = self.rate_control.update(detector.hypothesis, rate, arrival_time_ms)
            if target is not None:
                self.last_update_ms = arrival_time_ms
                return target, list(self.ssrcs.keys())
        return None

    def _time_to_reduce_further(self, now_ms: int) -> bool:
        rate = self.incoming_bitrate.rate(now_ms)
        if rate is None:
            return False
        control = self.rate_control
        interval = min(max(control.rtt, 10), 200)  # the round trip, within 10–200 ms
        if control.last_change_ms is None or now_ms - control.last_change_ms >= interval:
            return True
        return control.current_bitrate_initialized and rate < 0.5 * control.current_bitrate


def speed_up_estimator(estimator: RemoteBitrateEstimator, paced_decrease: bool = False) -> None:
    """Swap the slow parts of a fresh (not yet fed) estimator for equivalent faster ones; with
    `paced_decrease`, decreases follow libwebrtc's pace (see `_FastRemoteBitrateEstimator`)."""
    if isinstance(estimator.estimator, _FastOveruseEstimator):
        return
    estimator.__class__ = _FastRemoteBitrateEstimator
    estimator.paced_decrease = paced_decrease
    estimator.inter_arrival.__class__ = _FastInterArrival
    estimator.estimator = _FastOveruseEstimator()
    estimator.incoming_bitrate = _FastRateCounter(RATE_WINDOW_MS, RATE_SCALE)


def cap_publisher_estimate(receiver: RTCRtpReceiver, cap: Callable[[], int | None]) -> None:
    """Make the REMB this receiver sends to its publisher at most `cap()` bits per second."""
    estimator = getattr(receiver, _ESTIMATOR)
    if estimator is not None and not isinstance(estimator, _CappedEstimator):
        speed_up_estimator(estimator, paced_decrease=True)
        setattr(receiver, _ESTIMATOR, _CappedEstimator(estimator, cap))


async def send_publisher_estimate(receiver: RTCRtpReceiver, bitrate: int) -> bool:
    """Send a REMB to the publisher now (when a subscriber's estimate fell); False before media flows."""
    rtcp_ssrc = getattr(receiver, _RTCP_SSRC)
    ssrc = media_ssrc(receiver)
    if rtcp_ssrc is None or ssrc is None:
        return False
    estimator = getattr(receiver, _ESTIMATOR)
    if isinstance(estimator, _CappedEstimator) and estimator.last is not None:
        bitrate = min(bitrate, estimator.last)
    await receiver._send_rtcp(_remb(rtcp_ssrc, int(bitrate), [ssrc]))
    return True


def share_publisher_estimate(receiver: RTCRtpReceiver, other: RTCRtpReceiver) -> None:
    """Let `receiver` feed `other`'s estimator instead of its own: one estimate and one REMB for all the
    video a publisher sends on its connection (camera and screen), as libwebrtc's receive-side estimator
    is one per connection. With one estimator per stream, each would tell the publisher only what its
    own stream carries, and the browser takes every REMB as the cap of its whole connection: a still
    screen's low estimate would throttle the camera too (measured: the connection fell to 100 kbit/s)."""
    shared = getattr(other, _ESTIMATOR)
    if shared is not None and getattr(receiver, _ESTIMATOR) is not shared:
        setattr(receiver, _ESTIMATOR, shared)
