"""The aiortc fork (sprechstunde/media/aiortc_fork/): every aiortc/aioice function or class it replaces or
mirrors is checked by the hash of its source against the pinned release, a changed source stops the
start-up naming it, and nothing process-wide is patched: plain aiortc peer connections next to the
server's (the tests' clients, a fresh one) run stock aiortc."""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import queue
import re
from typing import Any

import aiortc
import aiortc.rate
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver

from sprechstunde.media.aiortc_fork import check
from sprechstunde.media.aiortc_fork import receiver as fork_receiver
from sprechstunde.media.aiortc_fork import transport as fork_transport
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant

UPSTREAM = ("aiortc", "aioice")
MANGLED = re.compile(r"^_([A-Z]\w*?)__[a-z]\w*$")  # a private field of an aiortc class, by its mangled name


def upstream(obj: Any) -> bool:
    name = getattr(obj, "__name__", "") if inspect.ismodule(obj) else getattr(obj, "__module__", "") or ""
    return name.split(".")[0] in UPSTREAM


def qualified(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def static_value(module: Any, node: ast.expr) -> Any:
    """What a name or dotted name in a fork module refers to at module level (None: a local or other)."""
    if isinstance(node, ast.Name):
        return vars(module).get(node.id)
    if isinstance(node, ast.Attribute):
        owner = static_value(module, node.value)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def upstream_classes() -> list[type]:
    """The classes of every aiortc/aioice module the hash table names."""
    modules = {name.partition(":")[0] for name in check.EXPECTED}
    return [
        value
        for module_name in sorted(modules)
        for value in vars(importlib.import_module(module_name)).values()
        if inspect.isclass(value) and value.__module__ == module_name
    ]


def attribute_writes(tree: ast.AST) -> list[tuple[ast.expr, str]]:
    """(object, attribute) of every `x.attr = …` and `setattr(x, "attr", …)` in a module."""
    writes = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        writes += [(t.value, t.attr) for t in targets if isinstance(t, ast.Attribute)]
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr" and len(node.args) == 3:
            name = node.args[1]
            writes.append((node.args[0], name.value if isinstance(name, ast.Constant) else ""))
    return writes


def test_the_installed_aiortc_and_aioice_are_the_sources_the_fork_mirrors():
    check.check()
    assert check.current_hashes() == check.EXPECTED


def test_the_hash_table_covers_exactly_what_the_fork_modules_replace_or_mirror():
    assert set(check.EXPECTED) == set(check.mirrored())
    assert {module.__name__.rsplit(".", 1)[1] for module in check.MODULES} >= {
        "receiver", "sender", "estimator", "transport", "clock", "rtp_header",
    }  # fmt: skip


def test_every_subclassed_wrapped_or_private_aiortc_name_is_in_the_hash_table():
    """Read from the fork's code itself: each aiortc/aioice class it subclasses, each method it replaces
    on an instance, each private field it reaches by its mangled name has its source hash checked."""
    names = set(check.EXPECTED)
    classes = upstream_classes()
    seen = {"bases": 0, "methods": 0, "fields": 0}
    for module in check.MODULES:
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    value = static_value(module, base)
                    if inspect.isclass(value) and upstream(value):
                        assert qualified(value) in names, (module.__name__, node.name)
                        seen["bases"] += 1
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = MANGLED.match(node.value)
                if match:
                    owner = match.group(1)
                    assert any(n.partition(":")[2] in (owner, f"{owner}.__init__") for n in names), node.value
                    seen["fields"] += 1
        for _, attr in attribute_writes(tree):
            replaced = {
                f"{qualified(cls)}.{attr}" for cls in classes if inspect.isfunction(vars(cls).get(attr))
            }
            if replaced:
                assert replaced & names, (module.__name__, attr)
                seen["methods"] += 1
    assert seen["bases"] >= 7 and seen["methods"] >= 10 and seen["fields"] >= 20, seen


def test_the_fork_patches_no_aiortc_or_aioice_module_or_class():
    """No assignment in the fork targets an aiortc/aioice module or class: every change is made on an
    instance (a receiver, a sender, a transport, a connection, a protocol, an estimator)."""
    for module in check.MODULES:
        for owner, attr in attribute_writes(ast.parse(inspect.getsource(module))):
            value = static_value(module, owner)
            assert not ((inspect.ismodule(value) or inspect.isclass(value)) and upstream(value)), (
                f"{module.__name__} patches {ast.unparse(owner)}.{attr} process-wide"
            )


def test_a_changed_function_stops_the_start_up_naming_it(monkeypatch):
    async def handle_rtp_packet(self, packet, arrival_time_ms):  # not aiortc's
        return None

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle_rtp_packet)
    with pytest.raises(RuntimeError) as raised:
        check.check()
    assert str(raised.value).endswith(": aiortc.rtcrtpreceiver:RTCRtpReceiver._handle_rtp_packet")


def test_a_changed_class_stops_the_start_up_naming_it(monkeypatch):
    class RateCounter(aiortc.rate.RateCounter):
        def reset(self) -> None:
            super().reset()

    monkeypatch.setattr(aiortc.rate, "RateCounter", RateCounter)
    with pytest.raises(RuntimeError, match=re.escape("aiortc.rate:RateCounter")):
        check.check()


def test_a_mirror_without_an_expected_hash_stops_the_start_up(monkeypatch):
    monkeypatch.setitem(fork_receiver.MIRRORS, "aiortc.rtcrtpreceiver:RTCRtpReceiver.stop", "a new mirror")
    with pytest.raises(RuntimeError, match=re.escape("aiortc.rtcrtpreceiver:RTCRtpReceiver.stop")):
        check.check()


def test_another_release_stops_the_start_up(monkeypatch):
    monkeypatch.setattr(aiortc, "__version__", "1.16.1")
    with pytest.raises(RuntimeError, match="pinned"):
        check.check()


def assert_stock(pc: RTCPeerConnection) -> set[str]:
    """A peer connection whose receivers, senders, transports and ICE connection are aiortc's and
    aioice's own, nothing replaced on them; returns the host addresses it announced."""
    hosts: set[str] = set()
    for transceiver in pc.getTransceivers():
        receiver, sender = transceiver.receiver, transceiver.sender
        assert not {"_handle_rtp_packet", "_handle_packet_now"} & set(vars(receiver))
        assert type(getattr(receiver, fork_receiver._DECODER_QUEUE)) is queue.Queue
        assert type(getattr(receiver, fork_receiver._JITTER_BUFFER)) is JitterBuffer
        assert type(getattr(receiver, fork_receiver._NACK_GENERATOR)) in (NackGenerator, type(None))
        estimator = getattr(receiver, fork_receiver._ESTIMATOR)
        assert estimator is None or type(estimator) is RemoteBitrateEstimator
        assert not {"_run_rtp", "_send_keyframe", "_handle_rtcp_packet"} & set(vars(sender))
        dtls = receiver.transport
        assert not {"_send_rtp", "_shortcut", "_direct_pair"} & set(vars(dtls))
        connection = dtls.transport._connection
        replaced = {"data_received", "gather_candidates", "_add_remote_candidate", "request_received"}
        assert not replaced & set(vars(connection))
        assert all("datagram_received" not in vars(protocol) for protocol in connection._protocols)
        hosts |= {candidate.host for candidate in connection.local_candidates if candidate.type == "host"}
    return hosts


async def test_plain_peer_connections_next_to_the_servers_run_stock_aiortc(client, services):
    room = await services.rooms.create("vhs", 3600)
    url = str(client.make_url("/ws"))
    people = [
        RtcParticipant(client.session, url, token_of(services.rooms.link(room, role, "http://test")), name)
        for role, name in (("citizen", "Bürgerin"), ("advisor", "Berater"))
    ]
    plain = RTCPeerConnection()
    try:
        for person in people:
            await person.join()
        await asyncio.gather(*(person.wait_frames(video=5, audio=5) for person in people))
        # the server's own connection does carry the fork, on its instances
        media_room = services.hub.rooms[people[0].welcome["room_id"]]
        server = media_room.media._peers[people[0].welcome["participant_id"]]
        for connection in fork_transport.ice_connections(server.pc):
            assert {"data_received", "gather_candidates", "request_received"} <= set(vars(connection))
            assert all("datagram_received" in vars(protocol) for protocol in connection._protocols)
            assert {c.host for c in connection.local_candidates} == {"127.0.0.1"}  # the media address
        assert all("_run_rtp" in vars(t.sender) for t in server._downlink.values())
        # … while the clients' connections and one made now are stock aiortc
        plain.addTransceiver("audio")
        plain.addTransceiver("video")
        await plain.setLocalDescription(await plain.createOffer())
        for pc in (*(person.pc for person in people), plain):
            assert "127.0.0.1" not in assert_stock(pc)  # aioice's own choice of host addresses
        for name, digest in check.EXPECTED.items():  # and so are aiortc's and aioice's classes
            assert check.source_hash(check.resolve(name)) == digest, name
    finally:
        await plain.close()
        for person in people:
            await person.close()
