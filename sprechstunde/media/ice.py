"""ICE servers for clients and the server, with coturn's time-limited shared-secret credentials.

TURN REST API (draft-uberti-behave-turn-rest): username = "<expiry unix time>:<user id>",
password = base64(HMAC-SHA1(shared secret, username)); coturn checks it with `use-auth-secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCBundlePolicy

from sprechstunde.media.ice_policy import IcePolicy


@dataclass(frozen=True)
class IceConfig:
    stun_urls: list[str] = field(default_factory=list)
    turn_urls: list[str] = field(default_factory=list)
    turn_secret: str | None = None
    turn_ttl: int = 6 * 3600
    # which remote addresses the server's ICE may contact (media/ice_policy.py)
    policy: IcePolicy = field(default_factory=IcePolicy)


def tls_turn_url(value: str) -> str:
    """`--turn-tls-url` as given: a `turns:` URL over TCP. Browsers behind firewalls that open only 443
    reach TURN this way (deploy/nginx.conf routes TLS without HTTP ALPN on 443 to coturn), so a `turn:`
    or `?transport=udp` URL here would silently not help them."""
    if not value.startswith("turns:") or "transport=udp" in value or not value[6:].split("?")[0]:
        raise ValueError(f"{value!r} is not a turns:<host>:<port>?transport=tcp URL")
    return value


def turn_credentials(secret: str, user: str, ttl: int, now: float | None = None) -> tuple[str, str]:
    username = f"{int((now or time.time()) + ttl)}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def client_ice_servers(config: IceConfig, user: str) -> list[dict]:
    """What a browser puts in `RTCPeerConnection({iceServers})`."""
    servers: list[dict] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls and config.turn_secret:
        username, credential = turn_credentials(config.turn_secret, user, config.turn_ttl)
        servers.append({"urls": list(config.turn_urls), "username": username, "credential": credential})
    return servers


def server_rtc_configuration(config: IceConfig) -> RTCConfiguration:
    """The server's own peer connections: bundle everything on one transport; STUN for NAT'd hosts."""
    servers = [RTCIceServer(urls=url) for url in config.stun_urls]
    return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
