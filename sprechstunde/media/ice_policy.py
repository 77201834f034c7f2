"""Which addresses the media server may send ICE connectivity checks to, and how many it takes.

Every remote ICE candidate makes the server send STUN binding requests to the address it names, so without a
policy a citizen's link could make the server probe the city's internal network, its own loopback services
or multicast groups (issue 15, finding 9). The policy decides per address; `CandidateBudget` applies it to
one peer connection: to the `a=candidate` lines of an offer or answer and to trickled candidates, with a cap
on how many distinct candidates a connection may name. media/aiortc_fork/transport.guard_remote_addresses
applies the same decision inside aioice, where mDNS names are resolved and peer-reflexive candidates are
learnt.

The default (see the README's "ICE candidates" section):

- never contacted: link-local (169.254/16, fe80::/10), multicast (224/4, ff00::/8), unspecified and
  "this network" (0/8, ::), broadcast (255.255.255.255) and the reserved 240/4; an operator cannot allow
  them — no browser reaches a server through them;
- loopback (127/8, ::1) only when the server's media itself runs on a loopback address (a development
  set-up, the test suite): then the browsers are on the same machine;
- private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) are allowed: a server on a city LAN
  serves clients on that LAN by their host candidates. Citizens on the internet reach a public server by
  their server-reflexive or relayed candidates (public addresses) or as peer-reflexive candidates learnt
  from their own checks, so an operator whose server only serves the internet loses nothing by denying the
  private ranges with `--ice-deny`, and should when the server can reach internal networks.

Plain networks only: this module knows nothing of offices, rooms or configuration files.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiortc.sdp import candidate_from_sdp

from sprechstunde.networks import Network as IPNetwork
from sprechstunde.networks import parse_networks

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REMOTE_CANDIDATES = 30  # distinct candidates one peer connection may name; browsers offer < 10
TOO_MANY_CANDIDATES = "too_many_candidates"  # the signaling error code when more arrive

NEVER = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # unspecified / "this network"
        "169.254.0.0/16",  # link-local
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 (limited broadcast) with it
        "::/128",  # unspecified
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # a NAT64 gateway sends these to the IPv4 address inside


def _address(host: str) -> IPAddress | None:
    """The address of a candidate host; an IPv4-mapped IPv6 address as the IPv4 address it stands for.
    None for anything that is not an IP address literal (names, scoped or malformed addresses)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return mapped
    return address


@dataclass(frozen=True)
class IcePolicy:
    """Whether the server may contact a remote address.

    `deny` (operator): never; `allow` (operator): if given, only these; `loopback`: whether loopback
    addresses may be contacted (True when the server's media runs on loopback). The ranges in `NEVER`
    are refused whatever the lists say.
    """

    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()
    loopback: bool = False

    @classmethod
    def build(
        cls, allow: Iterable[str] = (), deny: Iterable[str] = (), media_addresses: Iterable[str] = ()
    ) -> IcePolicy:
        """From the settings: CIDR lists and the addresses the media server announces (loopback is
        allowed exactly when one of them is a loopback address). ValueError for a bad CIDR."""
        loopback = False
        for host in media_addresses:
            address = _address(host)
            loopback = loopback or (address is not None and address.is_loopback)
        return cls(parse_networks(allow, "--ice-allow"), parse_networks(deny, "--ice-deny"), loopback)

    def permits(self, host: str) -> bool:
        address = _address(host)
        if address is None:
            return False
        if any(address in network for network in NEVER):
            return False
        if address.is_loopback and not self.loopback:
            return False
        if any(address in network for network in self.deny):
            return False
        return not self.allow or any(address in network for network in self.allow)


@dataclass
class CandidateBudget:
    """The remote candidates one peer connection has named so far, and the policy for new ones."""

    policy: IcePolicy
    limit: int = MAX_REMOTE_CANDIDATES
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    refused: int = 0  # candidates dropped by the policy (mDNS names included)
    over: int = 0  # candidates dropped because the connection had named `limit` already

    def admit(self, host: str, port: int, transport: str) -> bool:
        """Whether a candidate may be handed to ICE. mDNS names (`….local`) are not: resolving them
        would ask the server's LAN, and the browser's checks reach the server anyway (peer-reflexive)."""
        key = (host.lower(), transport.lower(), port)
        if key not in self.seen:
            if len(self.seen) >= self.limit:
                self.over += 1
                return False
            self.seen.add(key)
        if not self.policy.permits(host):
            self.refused += 1
            return False
        return True

    def filter_sdp(self, sdp: str) -> str:
        """The description without the `a=candidate` lines this connection may not use (unparsable ones
        included: aiortc would refuse the whole description for them)."""
        lines = sdp.split("\r\n") if "\r\n" in sdp else sdp.split("\n")
        kept = []
        for line in lines:
            if line.startswith("a=candidate:"):
                try:
                    candidate = candidate_from_sdp(line[len("a=candidate:") :])
                except Exception:
                    self.refused += 1
                    continue
                if not self.admit(candidate.ip, candidate.port, candidate.protocol):
                    continue
            kept.append(line)
        return ("\r\n" if "\r\n" in sdp else "\n").join(kept)
