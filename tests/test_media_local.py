"""An in-process participant (media/local.py, the phone bridge's caller when the room is hosted here): its
Opus packets go straight into its publication and it hears the others' microphones as their packets
arrive, with no peer connection. The session treats it as a participant without a connection to
negotiate; the hub hands it out only to a participant seated here without media, and the app offers it
to the phone bridge only where publications forward."""

from __future__ import annotations

import pytest

from sprechstunde.media.forwarding import ForwardingStats
from sprechstunde.media.ice import IceConfig
from sprechstunde.media.local import LocalPeer
from sprechstunde.media.session import MediaSession, NegotiationError
from sprechstunde.signaling.hub import Admission, SignalingHub
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.phone import PHONE


class Ears:
    """A `Listener` that keeps what each speaker said, and who was forgotten."""

    def __init__(self) -> None:
        self.heard: dict[str, list[bytes]] = {}
        self.forgotten: list[str] = []

    def hear(self, publisher_id: str):
        packets = self.heard.setdefault(publisher_id, [])
        return packets.append

    def forget(self, publisher_id: str) -> None:
        self.forgotten.append(publisher_id)


async def test_local_participants_hear_each_other_and_forget_who_left():
    stats = ForwardingStats()
    session = MediaSession(IceConfig(), stats=stats)
    anna_ears, caller_ears = Ears(), Ears()
    anna = await session.connect_local("p-anna", anna_ears)
    caller = await session.connect_local("p-call", caller_ears)
    for n in range(3):
        caller.send(b"caller %d" % n, n * 960)
    anna.send(b"anna", 0)
    assert anna_ears.heard == {"p-call": [b"caller 0", b"caller 1", b"caller 2"]}
    assert caller_ears.heard == {"p-anna": [b"anna"]}
    assert stats.frames["audio"] == 4 and stats.bytes["audio"] == 3 * 8 + 4  # counted as forwarded
    assert session.stats()["frames_out"] == 4

    await session.remove("p-anna")
    assert caller_ears.forgotten == ["p-anna"]
    caller.send(b"after", 3 * 960)
    assert anna_ears.heard["p-call"][-1] == b"caller 2"  # and who left hears nothing more
    await session.close()


async def test_a_local_participant_has_no_connection_to_negotiate_and_no_screen():
    session = MediaSession(IceConfig())
    await session.connect_local("p-call", Ears())
    with pytest.raises(NegotiationError) as refused:
        session.peer("p-call")  # an answer, offer or candidate from its socket is refused
    assert refused.value.code == "not_joined"
    with pytest.raises(NegotiationError) as screen:
        await session.share_screen("p-call", True)
    assert screen.value.code == "screen_unavailable"
    await session.close()


class Sharer(LocalPeer):
    """A participant whose connection can send a screen (as a browser's can), for `share_screen`."""

    sends_screen = True


async def test_a_screen_share_ending_leaves_the_sharers_voice_with_the_caller(monkeypatch):
    session = MediaSession(IceConfig())
    ears = Ears()
    await session.connect_local("p-call", ears)
    monkeypatch.setattr("sprechstunde.media.session.LocalPeer", Sharer)
    anna = await session.connect_local("p-anna", Ears())
    assert await session.share_screen("p-anna", True)
    assert await session.share_screen("p-anna", False)  # everyone unsubscribes from her screen alone
    anna.send(b"still talking", 0)
    assert ears.heard["p-anna"] == [b"still talking"] and ears.forgotten == []
    await session.close()


async def test_a_suspended_local_participant_sends_and_hears_nothing():
    session = MediaSession(IceConfig())
    ears, other = Ears(), Ears()
    caller = await session.connect_local("p-call", ears)
    anna = await session.connect_local("p-anna", other)
    await session.suspend("p-call")  # its socket dropped: its place waits, its media stops
    caller.send(b"late", 0)
    anna.send(b"anna", 0)
    assert other.heard.get("p-call", []) == []
    assert ears.heard.get("p-anna", []) == []
    await session.close()


class Socket:
    """What the hub keeps of a participant's WebSocket."""

    closed = False

    async def send_str(self, text: str) -> None:
        pass

    async def close(self, **kwargs) -> None:
        self.closed = True


@pytest.mark.parametrize("mode", ["forward", "transcode"])
async def test_the_hub_hands_local_media_only_to_a_participant_seated_here_without_media(mode):
    hub = SignalingHub(admit=None, ice=IceConfig(), media_mode=mode)  # type: ignore[arg-type]
    room = hub.room(Admission(room_id="r-1", role="guest", expires_at=4e9))
    browser, _ = await hub.join(room, "advisor", "Anna", None, Socket())  # type: ignore[arg-type]
    phone, _ = await hub.join(room, "guest", "Telefon …34", None, Socket())  # type: ignore[arg-type]
    phone.media = False  # as its hello said

    assert await hub.start_local_media("r-1", browser.participant_id, Ears()) is None  # has its own
    assert await hub.start_local_media("r-2", phone.participant_id, Ears()) is None  # not here
    assert await hub.start_local_media("r-1", "p-gone", Ears()) is None
    peer = await hub.start_local_media("r-1", phone.participant_id, Ears())
    if mode == "transcode":  # the baseline decodes each publisher from its receiver: there is none
        assert peer is None
    else:
        assert peer is not None and peer.peer_id == phone.participant_id
    await hub.close()


@pytest.mark.parametrize("mode", ["forward", "transcode"])
def test_the_phone_bridge_is_offered_local_media_only_in_forward_mode(tmp_path, mode):
    """In transcode mode the caller's first hello must ask for media (a peer connection), else the
    hub would refuse it local media every time and the caller would never reach the room."""
    config = Config(
        data_dir=tmp_path,
        demo=False,
        media_mode=mode,
        sip_listen="127.0.0.1:5999",  # not started: only the wiring is looked at
        sip_allow=["127.0.0.1/32"],
    )
    bridge = create_app(config)[PHONE].line.connect
    assert (bridge.local_media is not None) is (mode == "forward")
