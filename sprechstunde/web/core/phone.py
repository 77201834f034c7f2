"""Wiring of the phone line (sprechstunde/phone) into the app: built from the `--sip-*` settings when
--sip-listen is given, started and stopped with the app. `PHONE` holds it (tests and /metrics read it).
A claimed caller is bridged into the consultation room by `RoomBridge` (phone/bridge.py), which joins
over this server's own signaling socket (`signaling_url`) and counts its frames with the SFU's."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from sprechstunde.phone.bridge import RoomBridge
from sprechstunde.phone.service import PhoneService
from sprechstunde.phone.sip import SipSettings, parse_listen
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import Services
from sprechstunde.web.core.workers import SipPorts

PHONE = web.AppKey("phone", PhoneService)


def sip_settings(services: Services) -> SipSettings | None:
    """The endpoint's settings, or None without --sip-listen; a bad value stops start-up (ValueError)."""
    config = services.config
    if not config.sip_listen:
        return None
    host, port = parse_listen(config.sip_listen)
    ports = SipPorts.of(config)  # with --workers N the TLS port comes after all N SIP ports
    if not config.sip_allow and not (config.sip_username and config.sip_password):
        # an open SIP port is found by scanners within minutes: never without a rule for the trunk
        raise ValueError(
            "--sip-listen needs --sip-allow (the trunk's addresses) or --sip-user/--sip-password"
        )
    return SipSettings(
        host=host,
        port=port,
        allow=tuple(ipaddress.ip_network(cidr, strict=False) for cidr in config.sip_allow),
        username=config.sip_username,
        password=config.sip_password,
        tls_cert=config.sip_tls_cert,
        tls_key=config.sip_tls_key,
        tls_port=ports.tls_port(0) if ports is not None else None,
        calls_per_minute=config.sip_calls_per_minute,
        max_calls=config.sip_max_calls,
        secret=services.secret,
    )


def signaling_url(config: Config) -> str:
    """This process's own `/ws` as seen from itself (loopback when it listens on every address)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.host, config.host)
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{config.port}/ws"


def setup(app: web.Application, services: Services) -> None:
    """Build the phone line when configured and tie it to the app's start-up and shutdown."""
    settings = sip_settings(services)
    if settings is None:
        return
    nodes = services.hub.nodes  # several nodes (Redis): the caller's room goes where the SIP call is
    bridge = RoomBridge(
        services.queue,
        services.rooms,
        signaling_url(services.config),
        services.hub.forwarding,
        pin_here=nodes.pin_here if nodes is not None else None,
        # a room hosted here: no WebRTC to itself; transcode mode (the benchmark's baseline) decodes each
        # publisher from its receiver, so there the caller's media always takes a peer connection
        local_media=services.hub.start_local_media if services.hub.media_mode == "forward" else None,
    )
    phone = app[PHONE] = PhoneService(
        settings,
        services.queue,
        services.waiting.offices,
        services.config.data_dir,
        announce_every=services.config.phone_announce_seconds,
        hold_music=services.config.phone_hold_music,
        catalog=services.pages.catalog,
        clock=services.waiting.clock,
        connect=bridge,
        pin=bridge.pin,
    )

    async def start(app: web.Application) -> None:
        await phone.start()

    async def stop(app: web.Application) -> None:
        await phone.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
