"""Issue 15, finding 9: the media server contacts only the ICE addresses its policy allows, and takes at
most MAX_REMOTE_CANDIDATES candidates per connection.

A participant used to be able to name any address as an ICE candidate (in its answer's `a=candidate` lines or
trickled as `candidate` messages) and the server sent STUN checks there: a probe of the city's internal
network, its loopback services, link-local and multicast addresses. Here real aiortc participants
(tests/rtc_client.py) name forbidden addresses; every STUN message any aioice connection in this process
sends is recorded, and a UDP socket on loopback stands for an internal service that must hear nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import aioice.ice
import pytest

from sprechstunde.media.aiortc_fork import transport as fork_transport
from sprechstunde.media.ice_policy import (
    MAX_REMOTE_CANDIDATES,
    TOO_MANY_CANDIDATES,
    CandidateBudget,
    IcePolicy,
)
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import SERVICES
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant

FORBIDDEN = ["169.254.1.1", "224.0.0.1", "0.0.0.0", "255.255.255.255", "239.255.255.250"]


def candidate(host: str, port: int, foundation: int = 1) -> str:
    """A host candidate that outranks the participant's real ones, so the server would check it first
    (a prober names nothing better, or a priority as high as it likes)."""
    return f"candidate:{foundation} 1 udp 2147483000 {host} {port} typ host"


# --- the policy ------------------------------------------------------------------------------------------


def test_default_policy_refuses_link_local_multicast_unspecified_broadcast_and_loopback():
    policy = IcePolicy.build()
    for host in [
        "169.254.1.1", "169.254.169.254", "224.0.0.1", "239.255.255.250", "0.0.0.0", "0.1.2.3",
        "255.255.255.255", "240.0.0.1", "::", "fe80::1", "ff02::1", "127.0.0.1", "127.8.8.8", "::1",
        "::ffff:169.254.1.1", "::ffff:127.0.0.1", "64:ff9b::a9fe:101", "2002:a9fe:101::1",
        "printer.local", "example.org", "", "1.2.3.4.5", "fe80::1%eth0",
    ]:  # fmt: skip
        assert not policy.permits(host), host
    for host in ["192.0.2.7", "8.8.8.8", "10.1.2.3", "172.16.0.9", "192.168.1.20", "100.64.1.1",
                 "2001:db8::1", "fd00::1", "::ffff:192.0.2.7"]:  # fmt: skip
        assert policy.permits(host), host


def test_loopback_follows_the_media_address_and_lists_decide_the_rest():
    assert IcePolicy.build(media_addresses=["127.0.0.1"]).permits("127.0.0.1")
    assert IcePolicy.build(media_addresses=["::1"]).permits("127.0.0.5")
    assert not IcePolicy.build(media_addresses=["192.0.2.1"]).permits("127.0.0.1")
    on_loopback = IcePolicy.build(deny=["127.0.0.0/8"], media_addresses=["127.0.0.1"])
    assert not on_loopback.permits("127.0.0.1")
    lan_only = IcePolicy.build(allow=["10.0.0.0/8", "2001:db8::/32"])
    assert lan_only.permits("10.9.9.9") and lan_only.permits("2001:db8::5")
    assert not lan_only.permits("192.0.2.7") and not lan_only.permits("8.8.8.8")
    internet_only = IcePolicy.build(deny=["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"])
    assert internet_only.permits("8.8.8.8") and not internet_only.permits("192.168.0.1")
    # the operator cannot open what no browser needs
    assert not IcePolicy.build(allow=["0.0.0.0/0", "::/0"]).permits("169.254.1.1")
    with pytest.raises(ValueError, match="--ice-deny"):
        IcePolicy.build(deny=["10.0.0.0/33"])


def test_budget_filters_sdp_and_caps_distinct_candidates():
    budget = CandidateBudget(IcePolicy.build(), limit=3)
    sdp = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=" + candidate("192.0.2.1", 5000),
            "a=" + candidate("169.254.1.1", 5000),
            "a=" + candidate("abc-def.local", 5000),
            "a=candidate:garbage",
            "a=" + candidate("192.0.2.1", 5000),  # the same again: not counted twice
            "a=" + candidate("192.0.2.2", 5000),
            "a=end-of-candidates",
            "",
        ]
    )
    filtered = budget.filter_sdp(sdp)
    assert "192.0.2.1 5000" in filtered and "169.254" not in filtered and ".local" not in filtered
    assert "garbage" not in filtered and "a=end-of-candidates" in filtered and filtered.endswith("\r\n")
    assert "192.0.2.2" not in filtered and budget.over == 1  # 192.0.2.1, 169.254.1.1, the .local: 3
    assert budget.filter_sdp(filtered) == filtered  # a repeated answer costs nothing new


async def test_an_mdns_name_resolving_to_a_forbidden_address_is_not_contacted(monkeypatch):
    """aioice resolves `.local` names itself; the guard sees the resolved address."""

    class Resolver:
        async def resolve(self, host: str) -> str:
            return {"printer.local": "169.254.7.7", "pc.local": "192.0.2.9"}[host]

    async def resolver(subscriber: Any) -> Resolver:
        return Resolver()

    monkeypatch.setattr(aioice.ice, "get_or_create_mdns_protocol", resolver)
    connection = aioice.ice.Connection(ice_controlling=True)
    fork_transport.guard_remote_addresses(connection, IcePolicy.build().permits)
    for host in ("printer.local", "pc.local"):
        await connection.add_remote_candidate(aioice.Candidate("1", 1, "udp", 2122260223, host, 5000, "host"))
    assert [c.host for c in connection.remote_candidates] == ["pc.local"]  # reached at 192.0.2.9
    await connection.close()


# --- through the real server -----------------------------------------------------------------------------


class ScriptedParticipant(RtcParticipant):
    """Names extra ICE candidates to the server: in its answer's m-sections, or trickled (then the
    answer carries no candidates and no end-of-candidates, as a trickling browser's does)."""

    def __init__(self, *args: Any, extra: list[str], trickle: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra = extra
        self.trickle = trickle
        self.answers = 0

    async def _send_answer(self, sdp: str) -> None:
        assert self.ws is not None
        lines = sdp.split("\r\n")
        own = [line[2:] for line in lines if line.startswith("a=candidate:")]
        if self.trickle:
            lines = [line for line in lines if not line.startswith(("a=candidate:", "a=end-of-candidates"))]
        else:  # in every m-section: aiortc takes a bundled transport's candidates from the last one
            lines = [
                added
                for line in lines
                for added in ([f"a={text}" for text in self.extra] if line == "a=end-of-candidates" else [])
                + [line]
            ]
        await self.ws.send_json({"type": "answer", "sdp": "\r\n".join(lines)})
        self.answers += 1
        if self.trickle and self.answers == 1:
            for n, text in enumerate(own + self.extra):
                await self.ws.send_json(
                    {"type": "candidate", "id": f"c{n}", "candidate": {"candidate": text, "sdpMid": "0"}}
                )


@pytest.fixture
def stun_sent(monkeypatch) -> list[tuple[str, int]]:
    """Where every aioice connection in this process sent a STUN message (server and test clients)."""
    sent: list[tuple[str, int]] = []
    send_stun = aioice.ice.StunProtocol.send_stun

    def record(self: Any, message: Any, addr: tuple[str, int]) -> None:
        sent.append((addr[0], addr[1]))
        send_stun(self, message, addr)

    monkeypatch.setattr(aioice.ice.StunProtocol, "send_stun", record)
    return sent


class Listener(asyncio.DatagramProtocol):
    """A UDP service on loopback: what it receives, nobody should have sent."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Any]] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))


@pytest.fixture
async def listener():
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        Listener, local_addr=("127.0.0.1", 0)
    )
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


async def app_client(aiohttp_client, tmp_path, **settings):
    config = Config(data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False, **settings)
    return await aiohttp_client(create_app(config))


async def participants(client, *, citizen: dict, advisor: dict | None = None) -> list[RtcParticipant]:
    services = client.app[SERVICES]
    room = await services.rooms.create("vhs", 3600)
    url = str(client.make_url("/ws"))
    link = token_of(services.rooms.link(room, "citizen", ""))
    made = [ScriptedParticipant(client.session, url, link, "B", **citizen)]
    if advisor is not None:
        link = token_of(services.rooms.link(room, "advisor", ""))
        made.append(ScriptedParticipant(client.session, url, link, "A", **advisor))
    return made


def server_connection(client, who: RtcParticipant) -> aioice.ice.Connection:
    room = client.app[SERVICES].hub.rooms[who.welcome["room_id"]]
    peer = room.media._peers[who.welcome["participant_id"]]
    return fork_transport.ice_connections(peer.pc)[0]


def assert_never_contacted(sent: list[tuple[str, int]], hosts: list[str]) -> None:
    forbidden = {ipaddress.ip_address(h) for h in hosts}
    hit = [addr for addr in sent if ipaddress.ip_address(addr[0]) in forbidden]
    assert not hit, hit


@pytest.mark.parametrize("trickle", [False, True], ids=["in-the-answer", "trickled"])
async def test_forbidden_candidates_are_never_contacted_when_loopback_is_forbidden(
    aiohttp_client, tmp_path, stun_sent, listener, trickle
):
    received, port = listener
    client = await app_client(aiohttp_client, tmp_path, ice_deny=["127.0.0.0/8"])
    extra = [candidate(host, 5000 + n, n + 10) for n, host in enumerate(FORBIDDEN)]
    extra.append(candidate("127.0.0.1", port, 99))
    # relay-only without a TURN server: the prober offers no working candidate of its own, so the server
    # would go on to check every candidate it was given
    (citizen,) = await participants(client, citizen={"extra": extra, "trickle": trickle, "relay_only": True})
    try:
        await citizen.join()
        await citizen.wait_for("offer")
        await asyncio.sleep(2.5)  # aioice checks a pair every 20 ms: every pair would have been tried
        remote = server_connection(client, citizen).remote_candidates
        assert not [c.host for c in remote if c.host in FORBIDDEN or c.host.startswith("127.")]
        assert_never_contacted(stun_sent, FORBIDDEN)
        assert received.received == []  # (the citizen's own checks go to the server's 127.0.0.1 port)
        assert not [m for m in citizen.messages if m["type"] == "error"]  # refused silently, no cap hit
    finally:
        await citizen.close()


@pytest.mark.parametrize("trickle", [False, True], ids=["in-the-answer", "trickled"])
async def test_a_call_with_allowed_candidates_connects_and_forbidden_ones_are_ignored(
    aiohttp_client, tmp_path, stun_sent, trickle
):
    client = await app_client(aiohttp_client, tmp_path)  # media on loopback: loopback is allowed
    extra = [candidate(host, 6000 + n, n + 10) for n, host in enumerate(FORBIDDEN)]
    extra.append(candidate("abc-123.local", 6100, 98))
    citizen, advisor = await participants(
        client, citizen={"extra": extra, "trickle": trickle}, advisor={"extra": [], "trickle": trickle}
    )
    try:
        await citizen.join()
        await advisor.join()
        await asyncio.gather(citizen.wait_frames(video=10, audio=10), advisor.wait_frames(video=10, audio=10))
        assert_never_contacted(stun_sent, FORBIDDEN)
        hosts = {c.host for c in server_connection(client, citizen).remote_candidates}
        assert hosts and not hosts & set(FORBIDDEN) and not any(h.endswith(".local") for h in hosts)
    finally:
        await citizen.close()
        await advisor.close()


async def test_candidates_beyond_the_cap_are_ignored_with_an_error(aiohttp_client, tmp_path, stun_sent):
    client = await app_client(aiohttp_client, tmp_path)
    many = [candidate(f"192.0.2.{n}", 7000, n + 10) for n in range(1, MAX_REMOTE_CANDIDATES + 11)]
    trickler, answerer = await participants(
        client, citizen={"extra": many, "trickle": True}, advisor={"extra": many, "trickle": False}
    )
    try:
        await trickler.join()
        # the trickled ones: the first MAX_REMOTE_CANDIDATES distinct candidates (its own first) are
        # taken, every later one gets the error with its request id and is ignored
        error = await trickler.wait_for("error", timeout=10)
        assert error["code"] == TOO_MANY_CANDIDATES and error["id"].startswith("c")
        await answerer.join()
        # the answer's: ignored beyond the cap, one error for the answer; the call still connects
        error = await answerer.wait_for("error", timeout=10)
        assert error["code"] == TOO_MANY_CANDIDATES and "id" not in error
        await asyncio.gather(
            trickler.wait_frames(video=10, audio=10), answerer.wait_frames(video=10, audio=10)
        )
        for who in (trickler, answerer):
            named = [c for c in server_connection(client, who).remote_candidates if c.type != "prflx"]
            assert 0 < len(named) <= MAX_REMOTE_CANDIDATES
        late = {f"192.0.2.{n}" for n in range(MAX_REMOTE_CANDIDATES, MAX_REMOTE_CANDIDATES + 11)}
        assert not [addr for addr in stun_sent if addr[0] in late]
        errors = [m for m in trickler.messages if m["type"] == "error"]
        assert all(m["code"] == TOO_MANY_CANDIDATES for m in errors)
    finally:
        await trickler.close()
        await answerer.close()


def test_settings_reach_the_policy_and_a_bad_cidr_stops_start_up(tmp_path, monkeypatch):
    """--ice-allow / --ice-deny (and SPRECHSTUNDE_ICE_*) as the other list settings; checked at start-up."""
    from sprechstunde.web.core import cli

    policy = Config(media_addresses=["127.0.0.1"], ice_deny=["10.0.0.0/8"], ice_allow=[]).ice.policy
    assert policy.loopback and not policy.permits("10.1.1.1") and policy.permits("192.168.1.1")
    monkeypatch.setenv("SPRECHSTUNDE_ICE_DENY", "10.0.0.0/8,192.168.0.0/16")
    args = cli.build_parser().parse_args(["serve", "--ice-allow", "192.0.2.0/24"])
    assert args.ice_deny == ["10.0.0.0/8", "192.168.0.0/16"] and args.ice_allow == ["192.0.2.0/24"]
    # leave pytest's logging be
    monkeypatch.setattr("sprechstunde.web.core.observability.setup_logging", lambda *args: None)
    with pytest.raises(SystemExit, match="--ice-deny: '10.0.0.0/33' is not an IP address or CIDR network"):
        cli.main(["serve", "--data-dir", str(tmp_path), "--no-demo", "--ice-deny", "10.0.0.0/33"])
