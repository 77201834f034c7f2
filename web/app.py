"""The aiohttp application factory: builds every service once and wires the routes."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from media import aiortc_hooks
from rooms.service import RoomError, RoomService
from rooms.staff import StaffDirectory
from rooms.tokens import TokenSigner
from signaling.connection import HUB_KEY, websocket_handler
from signaling.hub import Admission, AdmissionError, SignalingHub
from store import SQLiteStore
from store.port import Store
from web import api, pages
from web.config import Config, prepare_data_dir
from web.i18n import Catalog
from web.render import Pages
from web.security import error_middleware, headers_middleware
from web.services import SERVICES, LoginThrottle, Services

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def build_services(config: Config, store: Store | None = None) -> Services:
    secret = prepare_data_dir(config.data_dir)
    store = store or SQLiteStore(config.database_path)
    signer = TokenSigner(secret)
    rooms = RoomService(store, signer)

    async def admit(token: str) -> Admission:
        try:
            grant, room = await rooms.admit(token)
        except RoomError as exc:
            raise AdmissionError(exc.code, exc.message) from None
        return Admission(room_id=room.room_id, role=grant.role, expires_at=room.expires_at)

    return Services(
        config=config,
        store=store,
        signer=signer,
        rooms=rooms,
        staff=StaffDirectory(store),
        pages=Pages(Catalog()),
        hub=SignalingHub(admit, config.ice, config.media_mode),
        secret=secret,
        throttle=LoginThrottle(),
    )


def create_app(config: Config, store: Store | None = None) -> web.Application:
    aiortc_hooks.check()
    aiortc_hooks.set_host_addresses(config.media_addresses)
    services = build_services(config, store)
    app = web.Application(
        middlewares=[headers_middleware, error_middleware(services.pages.error)],
        client_max_size=1024 * 1024,
    )
    app[SERVICES] = services
    app[HUB_KEY] = services.hub
    app.add_routes(api.routes)
    app.add_routes(pages.routes)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_static("/static", STATIC)

    async def shutdown(app: web.Application) -> None:
        await services.hub.close()

    async def cleanup(app: web.Application) -> None:
        await services.store.close()

    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app
