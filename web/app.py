"""The aiohttp application factory: builds every service once and wires the routes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from documents import DocumentService, KeyRing, Limits
from documents.service import Notify
from media import aiortc_hooks
from rooms.offices import load_offices
from rooms.queue import QueueService
from rooms.service import RoomError, RoomService
from rooms.staff import StaffDirectory
from rooms.tokens import TokenSigner
from signaling.connection import HUB_KEY, websocket_handler
from signaling.hub import Admission, AdmissionError, SignalingHub
from signaling.waiting import Clock, WaitingRoom
from store import open_store
from store.port import Store
from web import api, documents_api, pages, queue_api
from web.config import Config, prepare_data_dir
from web.i18n import Catalog
from web.render import Pages
from web.security import error_middleware, headers_middleware
from web.services import SERVICES, LoginThrottle, Services

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def build_documents(
    config: Config,
    store: Store,
    notify: Notify | None = None,
    clock: Callable[[], float] = time.time,
) -> DocumentService:
    mb = 1024 * 1024
    return DocumentService(
        store,
        config.data_dir,
        KeyRing(config.data_dir, config.document_keys),
        limits=Limits(int(config.max_file_mb * mb), int(config.max_room_mb * mb)),
        retention_days=config.retention_days,
        metadata_days=config.metadata_days,
        clock=clock,
        notify=notify,
    )


def build_services(config: Config, store: Store | None = None) -> Services:
    secret = prepare_data_dir(config.data_dir)
    store = store or open_store(
        config.database_path, redis_url=config.redis_url, redis_prefix=config.redis_prefix
    )
    signer = TokenSigner(secret)
    rooms = RoomService(store, signer)

    async def admit(token: str) -> Admission:
        try:
            grant, room = await rooms.admit(token)
        except RoomError as exc:
            raise AdmissionError(exc.code, exc.message) from None
        return Admission(room_id=room.room_id, role=grant.role, expires_at=room.expires_at)

    hub = SignalingHub(admit, config.ice, config.media_mode)
    # "document-added" / "document-removed" reach everyone connected to the live room at once.
    documents = build_documents(config, store, notify=hub.publish)
    # Offices are read once; a mistake stops start-up with "<file>: <field>: <problem>".
    offices = load_offices(config.offices_path, holiday_state=config.holiday_state)
    clock = Clock()  # tests move it to an opening hour
    queue = QueueService(store, offices, signer, rooms, clock=clock)
    return Services(
        config=config,
        store=store,
        signer=signer,
        rooms=rooms,
        staff=StaffDirectory(store),
        pages=Pages(Catalog()),
        hub=hub,
        secret=secret,
        throttle=LoginThrottle(),
        documents=documents,
        queue=queue,
        waiting=WaitingRoom(queue, offices, queue_api.room_links(rooms), clock),
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
    app.add_routes(documents_api.routes)
    app.add_routes(pages.routes)
    app.add_routes(queue_api.routes)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_static("/static", STATIC)

    async def startup(app: web.Application) -> None:
        # Removes half-written uploads of a crash, runs due retention jobs, then keeps running them.
        await services.documents.start(config.retention_interval)
        # Abandons waiting citizens whose grace ran out, every 5 s.
        services.waiting.start()

    async def shutdown(app: web.Application) -> None:
        await services.hub.close()
        await services.waiting.close()
        await services.documents.close()

    async def cleanup(app: web.Application) -> None:
        await services.store.close()

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app
