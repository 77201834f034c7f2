"""aiortc's RTCDtlsTransport and aioice's Connection/StunProtocol under the server's peer connections.

Profiled at N = 8 (bench/media_relay.py --profile), about half of the forwarding CPU was spent before a
packet reached the receiver: aioice tries to parse every datagram as STUN, queues it, and a task per
connection wakes to take it off the queue again; sending wraps one `sendto` in three coroutines. The
shortcuts here (`shortcut_transport`) keep aiortc's own handlers and only remove that detour; each gives
the same results as the code it replaces. The same connections are held to the ICE address policy
(`guard_remote_addresses`) and announce the configured host addresses (`pin_host_addresses`). Everything
is installed on one connection at a time: aioice's classes and module functions stay stock.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import Any

import aioice.ice
import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtp import is_rtcp

from sprechstunde.media import rtp_header
from sprechstunde.media.aiortc_fork.clock import _current_ms
from sprechstunde.media.aiortc_fork.coroutines import run_now

log = logging.getLogger(__name__)

STUN_MAX_FIRST_BYTE = 0x3F  # RFC 7983: a STUN message's first byte is 0–3, DTLS 20–63, RTP/RTCP 128–191
_DTLS_RX_BYTES = "_RTCDtlsTransport__rx_bytes"  # the transport's counters for getStats
_DTLS_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
_DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"

MIRRORS = {
    "aiortc.rtcdtlstransport:RTCDtlsTransport.__init__": "its counters and SRTP sessions are used",
    "aiortc.rtcdtlstransport:RTCDtlsTransport._recv_next": "mirrored by _receive_srtp for SRTP",
    "aiortc.rtcdtlstransport:RTCDtlsTransport._handle_rtp_data": "mirrored by _receive_srtp",
    "aiortc.rtcdtlstransport:RTCDtlsTransport._handle_rtcp_data": "called by _receive_srtp",
    "aiortc.rtcdtlstransport:RTCDtlsTransport._send_rtp": "replaced per instance (shortcut_transport)",
    "aiortc.rtcdtlstransport:RtpRouter": "its tables read as route_rtp does",
    "aiortc.rtcicetransport:RTCIceGatherer.__init__": "makes the aioice connection (_connection)",
    "aiortc.rtcicetransport:RTCIceGatherer.gather": "gathers through the connection's gather_candidates",
    "aiortc.rtcicetransport:RTCIceTransport.__init__": "takes the gatherer's connection (_connection)",
    "aioice.ice:Connection.__init__": "its _nominated pairs and _protocols are read",
    "aioice.ice:Connection.data_received": "replaced per instance (shortcut_transport)",
    "aioice.ice:Connection.send": "mirrored by the shortcut's send_rtp",
    "aioice.ice:Connection.sendto": "mirrored by the shortcut's send_rtp",
    "aioice.ice:StunProtocol.datagram_received": "replaced per protocol (shortcut_transport)",
    "aioice.ice:StunProtocol.send_data": "mirrored by the shortcut's send_direct",
    "aioice.ice:Connection.add_remote_candidate": "hands every address to _add_remote_candidate",
    "aioice.ice:Connection._add_remote_candidate": "wrapped per instance (guard_remote_addresses)",
    "aioice.ice:Connection.request_received": "wrapped per instance (guard_remote_addresses)",
    "aioice.ice:Connection.gather_candidates": "run per instance with pinned host addresses",
    "aioice.ice:get_host_addresses": "replaced for one connection's gathering (pin_host_addresses)",
}


def _receive_srtp(dtls: RTCDtlsTransport, data: bytes) -> None:
    """What `RTCDtlsTransport._recv_next` does with an SRTP/SRTCP datagram, done on arrival."""
    arrival_time_ms = _current_ms()
    counters = dtls.__dict__
    counters[_DTLS_RX_BYTES] += len(data)
    counters[_DTLS_RX_PACKETS] += 1
    try:
        if is_rtcp(data):
            run_now(dtls._handle_rtcp_data(dtls._rx_srtp.unprotect_rtcp(data)))
            return
        data = dtls._rx_srtp.unprotect(data)
    except pylibsrtp.Error:
        return  # as aiortc: a packet that does not authenticate is dropped
    # `RTCDtlsTransport._handle_rtp_data`, with the faster header reading
    try:
        packet = rtp_header.parse(data, dtls._rtp_header_extensions_map)
    except ValueError:
        return
    router = dtls._rtp_router
    receiver = router.ssrc_table.get(packet.ssrc)  # `route_rtp`'s usual case, without its empty set
    if receiver is None or receiver not in router.payload_type_table.get(packet.payload_type, ()):
        receiver = router.route_rtp(packet)
    if receiver is not None:
        handle = receiver.__dict__.get("_handle_packet_now")  # a forwarding receiver's (tap_receiver)
        if handle is not None:
            handle(packet, arrival_time_ms)
        else:
            run_now(receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms))


def shortcut_transport(dtls: RTCDtlsTransport) -> None:
    """Take this transport's media past aioice's plumbing, both ways (after ICE gathering).

    In: a datagram that cannot be STUN skips aioice's STUN parser (`_skip_stun`); SRTP datagrams go to
    aiortc's handlers as they arrive, not through aioice's queue and the transport's reading task (a
    task switch per packet); DTLS, and anything before the handshake, still take the queue. Out: a
    protected packet goes to the selected pair's socket without three layers of coroutines
    (`Connection.send` → `sendto` → `send_data`) around one `sendto`.
    """
    if getattr(dtls, "_shortcut", False):
        return
    connection = dtls.transport._connection
    queued = connection.data_received
    counters = dtls.__dict__

    def data_received(data: bytes, component: int) -> None:
        if data and 127 < data[0] < 192 and dtls._state is State.CONNECTED and dtls._rx_srtp is not None:
            _receive_srtp(dtls, data)
        else:
            queued(data, component)

    def direct_pair() -> Any:
        """The selected candidate pair, when the transport is up and the pair's protocol is aioice's
        StunProtocol, whose `send_data` is one `transport.sendto` (on a relayed pair that transport is
        aioice's TurnTransport, which sends through the relay itself); else None."""
        pair = connection._nominated.get(1)
        if (
            dtls._state is State.CONNECTED
            and pair is not None
            and type(pair.protocol) is aioice.ice.StunProtocol
        ):
            return pair
        return None

    def protect(data: bytes) -> bytes:
        srtp = dtls._tx_srtp
        return srtp.protect_rtcp(data) if is_rtcp(data) else srtp.protect(data)

    def count(data: bytes) -> None:
        counters[_DTLS_TX_BYTES] += len(data)
        counters[_DTLS_TX_PACKETS] += 1

    def send_direct(data: bytes, protocol: Any, address: Any) -> None:
        """Protect and send on the protocol and to the address of a pair `direct_pair()` returned
        (nothing awaited in between)."""
        data = protect(data)
        protocol.transport.sendto(data, address)
        count(data)

    async def send_rtp(data: bytes) -> None:
        if dtls._state is not State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        pair = connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        if type(pair.protocol) is aioice.ice.StunProtocol:
            send_direct(data, pair.protocol, pair.remote_addr)
            return
        data = protect(data)
        await pair.protocol.send_data(data, pair.remote_addr)  # another protocol class: its own sending
        count(data)

    connection.data_received = data_received  # type: ignore[method-assign]
    for protocol in connection._protocols:
        _skip_stun(protocol, data_received)
    dtls._send_rtp = send_rtp  # type: ignore[method-assign]
    dtls._direct_pair = direct_pair  # type: ignore[attr-defined]
    dtls._send_direct = send_direct  # type: ignore[attr-defined]
    dtls._shortcut = True  # type: ignore[attr-defined]


def shortcut_transports(pc: Any) -> None:
    """`shortcut_transport` on every transport under a peer connection, once its local description is
    set (gathering is done then, so every socket's protocol is there). A transport already shortcut is
    left as it is: renegotiations may call this again."""
    for transceiver in pc.getTransceivers():
        for transport in (transceiver.receiver.transport, transceiver.sender.transport):
            if transport is not None:
                shortcut_transport(transport)


def _skip_stun(protocol: aioice.ice.StunProtocol, deliver: Callable[[bytes, int], None]) -> None:
    """aioice's datagram handler for this protocol, which parses every datagram as STUN and catches the
    error for media; a first byte above 63 cannot start a STUN message, so media goes straight on to
    `deliver` (the connection's `data_received`, which aioice's handler calls for it)."""
    stun = protocol.datagram_received  # aioice's, bound to this protocol
    component = protocol.local_candidate.component

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if data and data[0] > STUN_MAX_FIRST_BYTE:
            deliver(data, component)
        else:
            stun(data, addr)

    protocol.datagram_received = datagram_received  # type: ignore[method-assign]


# --- Which remote addresses ICE may contact (issue 15, finding 9; the policy: media/ice_policy.py) ----


def ice_connections(pc: Any) -> list[aioice.ice.Connection]:
    """The aioice connections under a peer connection's transports (one, with max-bundle)."""
    connections: list[aioice.ice.Connection] = []
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        if dtls is not None and dtls.transport._connection not in connections:
            connections.append(dtls.transport._connection)
    return connections


def guard_remote_addresses(connection: aioice.ice.Connection, permits: Callable[[str], bool]) -> None:
    """Let ICE contact only addresses `permits` accepts, however aioice learnt them: a signalled candidate
    once its address is known (`_add_remote_candidate` receives an mDNS name's resolved address too), and
    a peer-reflexive one learnt from an incoming check (`request_received`: a check from a refused address
    is neither answered nor paired). Installed once per connection, before any candidate arrives."""
    if getattr(connection, "_address_guard", None) is not None:
        return
    add_remote_candidate = connection._add_remote_candidate
    request_received = connection.request_received

    def guarded_add(candidate: Any, network_host: str) -> None:
        if not permits(network_host):
            log.debug("ICE: remote candidate %s refused by the address policy", network_host)
            return
        add_remote_candidate(candidate, network_host)

    def guarded_request(message: Any, addr: tuple[str, int], protocol: Any) -> None:
        if not permits(addr[0]):
            log.debug("ICE: check from %s ignored by the address policy", addr[0])
            return
        request_received(message, addr, protocol)

    connection._address_guard = permits  # type: ignore[attr-defined]
    connection._add_remote_candidate = guarded_add  # type: ignore[method-assign]
    connection.request_received = guarded_request  # type: ignore[method-assign]


# --- Which addresses the server announces ---------------------------------------------------------------

_host_addresses: list[str] = []  # the server's media addresses (set_host_addresses, at start-up)


def set_host_addresses(addresses: list[str] | None) -> None:
    """The addresses the server's connections announce as host candidates (aioice would announce every
    interface's but 127.0.0.1); applied to each of the server's connections by `pin_host_addresses`."""
    _host_addresses[:] = addresses or []


def pin_host_addresses(connection: aioice.ice.Connection, addresses: list[str] | None = None) -> None:
    """Make this connection gather host candidates on `addresses` (default: `set_host_addresses`'),
    before it gathers. aioice reads them from its module function `get_host_addresses`; this runs
    aioice's own `gather_candidates` code for this connection with that one name bound to the list."""
    pinned = list(addresses if addresses is not None else _host_addresses)
    if not pinned or getattr(connection, "_pinned_hosts", None) is not None:
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    gather = aioice.ice.Connection.gather_candidates
    namespace = {**gather.__globals__, "get_host_addresses": host_addresses}
    pinned_gather = types.FunctionType(
        gather.__code__, namespace, gather.__name__, gather.__defaults__, gather.__closure__
    )
    connection._pinned_hosts = pinned  # type: ignore[attr-defined]
    connection.gather_candidates = types.MethodType(pinned_gather, connection)  # type: ignore[method-assign]
