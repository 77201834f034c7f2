"""The caller's voice as the room receives it (phone/bridge.py CallerTrack): one 20 ms frame per 20 ms,
also after the server's event loop was held up — the frames missed meanwhile are not sent back to back
(a burst the advisor's jitter buffer would have to swallow), and the delay does not stay."""

from __future__ import annotations

import time

from sprechstunde.phone.bridge import CallerTrack
from sprechstunde.phone.sip import FRAME_BYTES, PhoneCall


async def test_after_a_stall_the_callers_track_keeps_its_pace_and_no_lag():
    call = PhoneCall(None, 1, "+4921511234567", "127.0.0.1")  # type: ignore[arg-type]  # no SIP here
    track = CallerTrack(call, None)
    try:
        for _ in range(3):
            await track.recv()
        time.sleep(0.3)  # the event loop held up for 15 frames
        call.inbound.extend([bytes(FRAME_BYTES)] * 10)  # what the caller said meanwhile
        await track.recv()
        assert len(call.inbound) <= 1, len(call.inbound)  # at most the newest frame is still to come
        started = time.monotonic()
        for _ in range(4):
            await track.recv()
        assert time.monotonic() - started >= 0.06  # paced again (20 ms a frame), not a burst
    finally:
        track.stop()
