"""A participant inside this process: the phone bridge's caller, in the media session without WebRTC.

A caller's audio is produced and heard in the server process itself (phone/bridge.py encodes it to Opus
and decodes the room's Opus for the telephone). Sent through a peer connection of its own to this
same process, each packet crossed the loopback twice: packed into RTP, encrypted, sent, received,
decrypted and put through a jitter buffer on both ends, with RTCP, ICE consent checks and a second
DTLS session beside it (issue 20, bench/phone.py). A `LocalPeer` takes that out: its Opus packets go
straight into its publication, and the packets of everyone else's microphone are handed to it as they
arrive from their publishers. The others see an ordinary participant: they subscribe to its audio (and to
a camera line that stays silent, as the WebRTC leg's did) and it subscribes to theirs. No video reaches
it: a telephone shows no pictures, and none is decoded for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aiortc import RTCRtpCodecParameters
from aiortc.jitterbuffer import JitterFrame

from sprechstunde.media.forwarding import FrameListener, Publication

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


class Listener(Protocol):
    """Where a local participant's incoming audio goes: one sink per publisher it hears."""

    def hear(self, publisher_id: str) -> Callable[[bytes], None]:
        """A new speaker: the function its Opus packets are handed to from now on."""

    def forget(self, publisher_id: str) -> None:
        """That speaker is gone (left, or no longer heard)."""


class LocalPeer:
    """The media session's view of an in-process participant: what `MediaSession` asks of a peer
    (subscribe, unsubscribe, negotiate, close), answered without a peer connection."""

    video_codecs: set[str] | None = None  # it takes no video: never a constraint on the others' codec
    sends_screen = False

    def __init__(self, peer_id: str, publication: Publication, listener: Listener) -> None:
        self.peer_id = peer_id
        self._listener = listener
        self._deliver = publication.attach_local(OPUS.mimeType)
        self._listening: dict[str, FrameListener] = {}  # publisher id → its microphone, heard here
        self.closed = False

    def send(self, payload: bytes, timestamp: int) -> None:
        """One Opus packet of this participant's microphone; `timestamp` on the 48 kHz RTP clock."""
        if not self.closed:
            self._deliver(OPUS, JitterFrame(payload, timestamp))

    def subscribe(self, publisher_id: str, publication: Publication, source: str | None = None) -> None:
        """Hear the publisher's microphone; its camera and screen are not for a telephone."""
        if publication.kind != "audio" or publisher_id in self._listening or self.closed:
            return
        self._listening[publisher_id] = publication.listen(self._listener.hear(publisher_id))

    def unsubscribe(self, publisher_id: str, sources: tuple[str, ...] = ("audio",)) -> None:
        """Stop hearing the publisher when its microphone is among `sources` (its screen ending is
        nothing to a telephone: `share_screen` unsubscribes everyone from the screen alone)."""
        if "audio" not in sources:
            return
        listener = self._listening.pop(publisher_id, None)
        if listener is not None:
            listener.park()
            self._listener.forget(publisher_id)

    def streams(self) -> dict[str, dict[str, str]]:
        return {}

    async def negotiate(self) -> None:
        """Nothing to negotiate: what it subscribes to flows at once."""

    async def close(self) -> None:
        self.closed = True
        for publisher_id in list(self._listening):
            self.unsubscribe(publisher_id, ("audio",))
