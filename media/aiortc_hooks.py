"""Every private aiortc detail the forwarder relies on, in one place.

aiortc decodes every received track and encodes every sent one. An SFU must do neither, so we tap the
receiver's queue of reassembled encoded frames and feed pre-encoded packets to the sender. These hooks are
checked against the aiortc versions pinned in pyproject.toml; `check()` fails loudly at start-up if an
upgrade moved them.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import aioice.ice
import aiortc
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender

TESTED_AIORTC = ("1.16.",)
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"

FrameSink = Callable[[Any, Any], None]


class FrameTap:
    """Stands in for the receiver's decoder queue: encoded frames go to `sink`, not to a decoder.

    The decoder thread aiortc starts still blocks on `get()`; it receives only the end-of-stream
    sentinel, so it exits when the receiver stops and no thread leaks.
    """

    def __init__(self, sink: FrameSink) -> None:
        self._sink = sink
        self._sentinel: queue.Queue = queue.Queue()

    def put(self, item: Any) -> None:
        if item is None:
            self._sentinel.put(None)
        else:
            codec, frame = item
            self._sink(codec, frame)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._sentinel.get(*args, **kwargs)


def check() -> None:
    """Refuse to run on an aiortc whose internals were not verified."""
    if not aiortc.__version__.startswith(TESTED_AIORTC):
        raise RuntimeError(
            f"aiortc {aiortc.__version__} is untested; media/aiortc_hooks.py supports {TESTED_AIORTC}"
        )
    probe = RTCRtpReceiver.__init__.__code__.co_names
    for name in ("_RTCRtpReceiver__decoder_queue", "_RTCRtpReceiver__rtx_ssrc"):
        if name not in probe:
            raise RuntimeError(f"aiortc internals changed: RTCRtpReceiver lacks {name}")
    for method in ("_send_rtcp_pli",):
        if not hasattr(RTCRtpReceiver, method):
            raise RuntimeError(f"aiortc internals changed: RTCRtpReceiver lacks {method}")
    if not hasattr(RTCRtpSender, "_send_keyframe"):
        raise RuntimeError("aiortc internals changed: RTCRtpSender lacks _send_keyframe")


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink) -> None:
    """Divert encoded frames to `sink`. Must run before `receiver.receive()` starts the decoder."""
    if getattr(receiver, _DECODER_THREAD) is not None:
        raise RuntimeError("receiver already started; tap it from the peer connection's track event")
    setattr(receiver, _DECODER_QUEUE, FrameTap(sink))


def media_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The SSRC of the primary media stream (not its RTX retransmission stream)."""
    rtx = getattr(receiver, _RTX_SSRC)
    for source in receiver.getSynchronizationSources():
        if source.source not in rtx:
            return source.source
    return None


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI upstream to the publisher; False while no media has arrived yet."""
    ssrc = media_ssrc(receiver)
    if ssrc is None:
        return False
    await receiver._send_rtcp_pli(ssrc)
    return True


def on_keyframe_request(sender: RTCRtpSender) -> None:
    """Route a subscriber's PLI/FIR (aiortc's `_send_keyframe`) to the track's `request_keyframe`.

    Tracks that carry decoded frames have none; for them the sender's own encoder makes the keyframe.
    """

    def keyframe() -> None:
        request = getattr(sender.track, "request_keyframe", None)
        if request is not None:
            request()
        else:
            RTCRtpSender._send_keyframe(sender)

    sender._send_keyframe = keyframe  # type: ignore[method-assign]


def set_host_addresses(addresses: list[str] | None) -> None:
    """Pin the addresses aiortc announces as host candidates (aioice skips 127.0.0.1 by default).

    Process-wide, because aioice reads it from a module function; set once at start-up.
    """
    if not addresses:
        return
    pinned = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [  # type: ignore[assignment]
        a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)
    ]
