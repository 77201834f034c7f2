"""IP networks from operator settings: one parser for every option that takes addresses or CIDRs
(--trusted-proxy, --metrics-allow, --ice-allow, --ice-deny). Imports nothing of the project."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str], option: str) -> tuple[Network, ...]:
    """Addresses or CIDR networks (host bits allowed, blanks skipped); ValueError names the option and
    the bad entry, so the CLI can print it as one line."""
    networks = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{option}: {entry!r} is not an IP address or CIDR network") from None
    return tuple(networks)
