"""A media session: the server-side peer connections of one consultation and who receives whom.

Each participant has one RTCPeerConnection to the server. Its first three m-lines carry what the participant
publishes, one per source: microphone (audio), camera (video) and screen (a second video line, silent until
the participant shares its screen); every further m-line carries one source of another participant. A
screen line to the others exists only while its publisher shares (`share_screen`). The server is
always the offerer when the set of tracks changes, so the browser only ever answers; a client-initiated
offer that crosses a server offer is refused as glare (the server is the impolite peer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.sdp import candidate_from_sdp

from sprechstunde.media.aiortc_fork import estimator as fork_estimator
from sprechstunde.media.aiortc_fork import receiver as fork_receiver
from sprechstunde.media.aiortc_fork import sender as fork_sender
from sprechstunde.media.aiortc_fork import transport as fork_transport
from sprechstunde.media.forwarding import ForwardingStats, Publication, TranscodingPublication
from sprechstunde.media.ice import IceConfig, server_rtc_configuration
from sprechstunde.media.ice_policy import TOO_MANY_CANDIDATES, CandidateBudget
from sprechstunde.media.local import Listener, LocalPeer

log = logging.getLogger(__name__)

KINDS = ("audio", "video")
# What a participant publishes, in the order of its uplink m-lines (mid 0, 1, 2), and each one's media kind.
SOURCES = ("audio", "video", "screen")
MEDIA_KIND = {"audio": "audio", "video": "video", "screen": "video"}
CAMERA_SOURCES = ("audio", "video")  # what everyone receives of everyone, sharing or not
# Forwarding passes encoded frames through, so publisher and subscriber must share the codec: VP8 first
# (every browser has it), H.264 for browsers without VP8 (older iPhones). A subscriber's m-line lists
# the publisher's codec first, so that anyone who can take it gets it unchanged.
PREFERRED_CODECS = {"audio": ("audio/opus",), "video": ("video/VP8", "video/H264", "video/rtx")}

MEDIA_MODES = ("forward", "transcode")

SendSignal = Callable[[dict], Awaitable[None]]


class NegotiationError(Exception):
    """An offer/answer/candidate that cannot be applied; `code` is a stable signaling error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _prefer_codecs(transceiver: RTCRtpTransceiver, kind: str, first: str | None = None) -> None:
    order = list(PREFERRED_CODECS[kind])
    if first is not None:
        order.sort(key=lambda mime: mime.lower() != first.lower())  # stable: the rest keep their order
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    transceiver.setCodecPreferences(
        [c for mime in order for c in codecs if c.mimeType.lower() == mime.lower()]
    )


def _discard(codec: Any, frame: Any) -> None:
    """The sink of a media line nobody receives."""


def _too_many_candidates(limit: int) -> dict[str, str]:
    return {
        "type": "error",
        "code": TOO_MANY_CANDIDATES,
        "message": f"a connection may name at most {limit} ICE candidates; the others are ignored",
    }


class MediaPeer:
    """The server's end of one participant's peer connection."""

    def __init__(
        self,
        peer_id: str,
        session: MediaSession,
        send: SendSignal,
        config: IceConfig,
        video_first: str | None = None,
    ) -> None:
        self.peer_id = peer_id
        self._session = session
        self._send = send
        self.pc = RTCPeerConnection(server_rtc_configuration(config))
        # the remote candidates this connection named, checked against the address policy
        self._candidates = CandidateBudget(config.policy)
        self._lock = asyncio.Lock()
        self._again = False
        self._closed = False
        self._uplink: dict[str, RTCRtpTransceiver] = {}  # source → the line it arrives on
        # (publisher id, source) → transceiver sending that publication to this peer
        self._downlink: dict[tuple[str, str], RTCRtpTransceiver] = {}
        self._spare: dict[str, list[RTCRtpTransceiver]] = {kind: [] for kind in KINDS}
        self.video_codecs: set[str] | None = None  # what this participant's client accepted for video
        self.pc.on("track", self._on_track)
        for source in SOURCES:
            kind = MEDIA_KIND[source]
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            # ask the publisher first for the video codec every other participant can take
            _prefer_codecs(transceiver, kind, video_first if kind == "video" else None)
            self._uplink[source] = transceiver
        self._guard_transports()

    def _guard_transports(self) -> None:
        """Hold aioice to the address policy too (mDNS results, peer-reflexive candidates), and to the
        server's media addresses. With max-bundle the first transceiver's transport is the only one, so
        this runs before any candidate and before gathering."""
        for connection in fork_transport.ice_connections(self.pc):
            fork_transport.guard_remote_addresses(connection, self._candidates.policy.permits)
            fork_transport.pin_host_addresses(connection)

    def _remote_description(self, sdp: str, kind: str) -> RTCSessionDescription:
        """The participant's description without the candidates the server may not contact."""
        return RTCSessionDescription(sdp=self._candidates.filter_sdp(sdp), type=kind)

    async def _report_overflow(self, before: int) -> None:
        """Tell the participant when candidates were ignored for the per-connection cap."""
        if self._candidates.over > before:
            await self._send(_too_many_candidates(self._candidates.limit))

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = fork_receiver.transceiver_of(self.pc, track)
        if transceiver is None:
            return
        source = next((s for s, t in self._uplink.items() if t is transceiver), None)
        if source is None:
            # A client that offers more tracks than microphone, camera and screen: not forwarded, and
            # not decoded either (aiortc's decoder would fill the unread track's queue without bound).
            log.info("peer %s: extra %s track ignored", self.peer_id, track.kind)
            fork_receiver.tap_receiver(transceiver.receiver, _discard, prompt=True)
            return
        fork_receiver.speed_up_receiver(transceiver.receiver)
        publication = self._session.publication(self.peer_id, source)
        publication.attach(transceiver.receiver, fork_sender.negotiated_codec(transceiver))

    def subscribe(self, publisher_id: str, publication: Publication, source: str | None = None) -> None:
        """Receive `publication` (the publisher's `source`; by default the one of its kind) from the
        next negotiation on, on a line that someone's stream used before if there is one."""
        key = (publisher_id, source or publication.kind)
        if key in self._downlink or self._closed:
            return
        spare = self._spare[publication.kind]
        if spare:
            # a media line someone else's stream used before: its sender, track and codec carry on
            transceiver = spare.pop()
            transceiver.direction = "sendonly"
            transceiver.sender.track.switch(publication)
        else:
            track = publication.subscribe()
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            _prefer_codecs(transceiver, publication.kind, publication.mime)
            sender = transceiver.sender
            fork_sender.on_keyframe_request(sender)
            fork_sender.on_receiver_estimate(sender)
            if hasattr(track, "attach_output"):  # forwarded frames (not transcode mode's decoded ones)
                fork_sender.push_frames(sender)
        self._downlink[key] = transceiver

    def unsubscribe(self, publisher_id: str, sources: tuple[str, ...] = SOURCES) -> None:
        """Stop receiving the publisher's `sources`; their lines go inactive, spare for reuse (forward
        mode; in transcode mode they stay unused until the connection closes)."""
        for source in sources:
            kind = MEDIA_KIND[source]
            transceiver = self._downlink.pop((publisher_id, source), None)
            if transceiver is None:
                continue
            track = transceiver.sender.track
            transceiver.direction = "inactive"
            if hasattr(track, "park"):
                track.park()  # aiortc's sender would stop for good if its track ended
                self._spare[kind].append(transceiver)
            else:
                # transcode mode: the line is not used again — its sender's task may still be inside the
                # old track's recv and would end with it, taking a newcomer's stream down too
                transceiver.sender.replaceTrack(None)
                if track is not None:
                    track.stop()

    @property
    def sends_screen(self) -> bool:
        """Whether the participant's answer took the screen line (mid 2) for sending: older clients answer
        it inactive and cannot share."""
        return self._uplink["screen"].currentDirection in ("recvonly", "sendrecv")

    def streams(self) -> dict[str, dict[str, str]]:
        """mid → whose track it carries and which source ("audio", "video" or "screen") it is, for the
        client to label remote media."""
        return {
            transceiver.mid: {"participant_id": publisher, "kind": source}
            for (publisher, source), transceiver in self._downlink.items()
            if transceiver.mid is not None
        }

    async def negotiate(self) -> None:
        """Send a fresh offer, or remember to once the outstanding one is answered."""
        async with self._lock:
            if self._closed:
                return
            if self.pc.signalingState != "stable":
                self._again = True
                return
            self._again = False
            await self.pc.setLocalDescription(await self.pc.createOffer())
            description = self.pc.localDescription
            message = {"type": "offer", "sdp": description.sdp, "streams": self.streams()}
        await self._send(message)

    async def apply_answer(self, sdp: str) -> None:
        async with self._lock:
            if self.pc.signalingState != "have-local-offer":
                raise NegotiationError("no_offer_pending", "no offer is waiting for an answer")
            over = self._candidates.over
            try:
                await self.pc.setRemoteDescription(self._remote_description(sdp, "answer"))
            except Exception as exc:  # aiortc raises ValueError, AssertionError, OperationError …
                raise NegotiationError("negotiation_failed", f"answer rejected: {exc}") from None
            self._guard_transports()
            self._negotiated()
            again = self._again
        await self._report_overflow(over)
        await self._session.published(self.peer_id)
        if again:
            await self.negotiate()

    def _negotiated(self) -> None:
        """Note the client's video codecs; tell each forwarded track which codec its subscriber's
        sender settled on. Media on the (now existing) transport skips aioice's plumbing."""
        fork_transport.shortcut_transports(self.pc)
        # camera and screen: one bitrate estimate for the publisher's connection, not one each
        uplink = self._uplink
        fork_estimator.share_publisher_estimate(uplink["screen"].receiver, uplink["video"].receiver)
        codecs = fork_sender.negotiated_codecs(self._uplink["video"])
        if codecs:
            self.video_codecs = {mime.lower() for mime in codecs}
        for transceiver in self._downlink.values():
            track = transceiver.sender.track
            if hasattr(track, "set_output_codec"):
                track.set_output_codec(fork_sender.negotiated_codec(transceiver))

    async def apply_offer(self, sdp: str) -> dict[str, Any]:
        async with self._lock:
            if self.pc.signalingState != "stable":
                raise NegotiationError("glare", "the server's offer is outstanding; answer it first")
            over = self._candidates.over
            try:
                await self.pc.setRemoteDescription(self._remote_description(sdp, "offer"))
                self._guard_transports()
                await self.pc.setLocalDescription(await self.pc.createAnswer())
            except Exception as exc:
                raise NegotiationError("negotiation_failed", f"offer rejected: {exc}") from None
            self._negotiated()
            answer = {"sdp": self.pc.localDescription.sdp, "streams": self.streams()}
        await self._report_overflow(over)
        await self._session.published(self.peer_id)
        return answer

    async def add_candidate(self, candidate: dict | None) -> None:
        if candidate is None or not candidate.get("candidate"):
            return  # end of candidates: aiortc needs no marker for bundled transports
        text = candidate["candidate"]
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        try:
            parsed = candidate_from_sdp(text)
        except Exception:
            raise NegotiationError("bad_message", "candidate is not a valid ICE candidate") from None
        over = self._candidates.over
        if not self._candidates.admit(parsed.ip, parsed.port, parsed.protocol):
            if self._candidates.over > over:
                error = _too_many_candidates(self._candidates.limit)
                raise NegotiationError(error["code"], error["message"])
            return  # an address the server may not contact (media/ice_policy.py), or an mDNS name
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
            parsed.sdpMLineIndex = 0
        await self.pc.addIceCandidate(parsed)

    async def close(self) -> None:
        self._closed = True
        for source, transceiver in self._uplink.items():
            self._session.publication(self.peer_id, source).detach(transceiver.receiver)
        for transceiver in self._downlink.values():
            if transceiver.sender.track is not None:
                transceiver.sender.track.stop()
        self._downlink.clear()
        await self.pc.close()


class MediaSession:
    """All peers of one consultation. Methods are called by the signaling layer, one room each."""

    def __init__(
        self, config: IceConfig, mode: str = "forward", stats: ForwardingStats | None = None
    ) -> None:
        if mode not in MEDIA_MODES:
            raise ValueError(f"media mode must be one of {MEDIA_MODES}")
        self._config = config
        self._stats = stats  # totals of the whole process, shared by every room's publications
        self._publication_class = Publication if mode == "forward" else TranscodingPublication
        # each participant's media: a peer connection, or an in-process participant (media/local.py)
        self._peers: dict[str, MediaPeer | LocalPeer] = {}
        self._publications: dict[str, dict[str, Publication]] = {}
        # newcomers whose codec is not negotiated yet: the others subscribe once they answered
        self._unpublished: set[str] = set()
        self.screen_sharer: str | None = None  # one screen at a time per consultation (share_screen)

    def publication(self, peer_id: str, source: str) -> Publication:
        sources = self._publications.setdefault(peer_id, {})
        if source not in sources:
            publication = self._publication_class(MEDIA_KIND[source], self._stats, source)
            if source in ("video", "screen"):
                publication.link_cap = lambda: self._video_cap(peer_id)
            sources[source] = publication
        return sources[source]

    def _video_cap(self, peer_id: str) -> int | None:
        """The most the participant's connection should carry in video: camera and screen share one
        bitrate estimate (MediaPeer._negotiated), and the subscribers' REMBs give each its share."""
        sources = self._publications.get(peer_id, {})
        caps = [sources[s].bitrate_cap() for s in ("video", "screen") if s in sources]
        caps = [cap for cap in caps if cap is not None]
        return sum(caps) if caps else None

    def _sources_of(self, peer_id: str) -> tuple[str, ...]:
        """What the others receive of this participant: its screen too while it shares."""
        return SOURCES if peer_id == self.screen_sharer else CAMERA_SOURCES

    def peer(self, peer_id: str) -> MediaPeer:
        """The participant's peer connection (an in-process participant has none to negotiate)."""
        peer = self._peers.get(peer_id)
        if not isinstance(peer, MediaPeer):
            raise NegotiationError("not_joined", "no media connection for this participant")
        return peer

    async def connect(self, peer_id: str, send: SendSignal) -> None:
        """A participant joined, or came back on a new connection: (re)build its peer connection."""
        old = self._peers.pop(peer_id, None)
        if old is not None:
            await old.close()
        peer = MediaPeer(peer_id, self, send, self._config, self._shared_video_codec(peer_id))
        self._peers[peer_id] = peer
        for source in SOURCES:
            self.publication(peer_id, source)
        for other_id in self._peers:
            # someone who has not answered yet subscribes everyone to itself once it has
            if other_id != peer_id and other_id not in self._unpublished:
                for source in self._sources_of(other_id):
                    peer.subscribe(other_id, self.publication(other_id, source), source)
        if old is None:
            # The others receive the newcomer once its answer fixed its codec, so that their m-lines
            # can offer that codec first (passed through, not transcoded). Its media cannot flow
            # before that answer anyway.
            self._unpublished.add(peer_id)
        await peer.negotiate()

    async def connect_local(self, peer_id: str, listener: Listener) -> LocalPeer:
        """An in-process participant (the phone bridge's caller, media/local.py) joins without a peer
        connection: it hears everyone's microphone from now on, and everyone receives its audio from
        their next negotiation on (sent at once: its codec is known, Opus)."""
        old = self._peers.pop(peer_id, None)
        if old is not None:
            await old.close()
        peer = LocalPeer(peer_id, self.publication(peer_id, "audio"), listener)
        self._peers[peer_id] = peer
        for source in SOURCES:
            self.publication(peer_id, source)
        for other_id in self._peers:
            if other_id != peer_id and other_id not in self._unpublished:
                peer.subscribe(other_id, self.publication(other_id, "audio"), "audio")
        self._unpublished.add(peer_id)
        await self.published(peer_id)
        return peer

    def _shared_video_codec(self, peer_id: str) -> str | None:
        """The first preferred video codec every other participant's client accepted, if any."""
        known = [p.video_codecs for other_id, p in self._peers.items() if other_id != peer_id]
        known = [codecs for codecs in known if codecs]
        for mime in PREFERRED_CODECS["video"]:
            if known and all(mime.lower() in codecs for codecs in known):
                return mime
        return None

    async def published(self, peer_id: str) -> None:
        """The participant's first negotiation completed: subscribe everyone else to it."""
        if peer_id not in self._unpublished:
            return
        self._unpublished.discard(peer_id)
        others = [other for other_id, other in self._peers.items() if other_id != peer_id]
        for other in others:
            for source in self._sources_of(peer_id):
                other.subscribe(peer_id, self.publication(peer_id, source), source)
        await asyncio.gather(*(other.negotiate() for other in others))

    async def share_screen(self, peer_id: str, on: bool) -> bool:
        """Start or stop forwarding the participant's screen line (mid 2) to everyone else; returns
        whether anything changed. One screen per consultation: while someone shares, another's start
        is refused (`screen_busy`) rather than taking the screen away from the first mid-sentence."""
        if peer_id not in self._peers:
            raise NegotiationError("not_joined", "no media connection for this participant")
        if on and self.screen_sharer not in (None, peer_id):
            raise NegotiationError("screen_busy", "someone else is sharing a screen; wait until they stop")
        if on == (self.screen_sharer == peer_id):
            return False
        if on and not self._peers[peer_id].sends_screen:
            raise NegotiationError(
                "screen_unavailable", "this connection does not send on its screen line (mid 2)"
            )
        self.screen_sharer = peer_id if on else None
        if peer_id in self._unpublished:
            return True  # `published` subscribes the others, screen included
        others = [other for other_id, other in self._peers.items() if other_id != peer_id]
        for other in others:
            if on:
                other.subscribe(peer_id, self.publication(peer_id, "screen"), "screen")
            else:
                other.unsubscribe(peer_id, ("screen",))
        await asyncio.gather(*(other.negotiate() for other in others))
        return True

    async def suspend(self, peer_id: str) -> None:
        """The participant's connection dropped: stop its peer connection, keep its place."""
        # The closed peer stays registered so that `connect` knows this is a comeback, not a newcomer.
        peer = self._peers.get(peer_id)
        if peer is not None:
            await peer.close()

    async def remove(self, peer_id: str) -> None:
        """The participant left for good: drop its media everywhere and renegotiate the others."""
        peer = self._peers.pop(peer_id, None)
        self._unpublished.discard(peer_id)
        if self.screen_sharer == peer_id:
            self.screen_sharer = None
        if peer is not None:
            await peer.close()
        for publication in self._publications.pop(peer_id, {}).values():
            publication.close()
        for other in self._peers.values():
            other.unsubscribe(peer_id)
        await asyncio.gather(*(other.negotiate() for other in self._peers.values()))

    async def close(self) -> None:
        for peer_id in list(self._peers):
            peer = self._peers.pop(peer_id)
            await peer.close()
        for kinds in self._publications.values():
            for publication in kinds.values():
                publication.close()
        self._publications.clear()

    def stats(self) -> dict[str, int]:
        return {
            "peers": len(self._peers),
            "frames_in": sum(p.frames_in for k in self._publications.values() for p in k.values()),
            "frames_out": sum(p.frames_out for k in self._publications.values() for p in k.values()),
        }
