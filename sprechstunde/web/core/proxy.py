"""Behind a reverse proxy (deploy/nginx.conf): take the client's address and scheme from the proxy's
`X-Forwarded-For` / `X-Forwarded-Proto`, but only when the request comes from a configured proxy address
(`--trusted-proxy`). Without it every citizen would share the proxy's address — one sign-in or queue rate
limit for the whole city, `/metrics` open to anyone through the proxy, session cookies without `Secure`."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from aiohttp import web

from sprechstunde.networks import Network


def address_in(address: str | None, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return any(ip in network for network in networks)


def forwarded_middleware(trusted: Iterable[Network]) -> Callable:
    """The right-most `X-Forwarded-For` address that is not itself a trusted proxy becomes
    `request.remote`; `X-Forwarded-Proto: https` makes `request.secure` true."""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
        if not trusted or not address_in(request.remote, trusted):
            return await handler(request)
        changes: dict[str, str] = {}
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
        for hop in reversed([h for h in hops if h]):
            if not address_in(hop, trusted):
                try:
                    changes["remote"] = str(ipaddress.ip_address(hop))
                except ValueError:
                    pass  # garbage from the client side: keep the proxy's address
                break
        proto = request.headers.get("X-Forwarded-Proto", "").strip().lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
        return await handler(request.clone(**changes) if changes else request)

    return middleware
