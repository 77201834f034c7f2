"""The aiohttp application factory: builds every service once and wires the routes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from sprechstunde.chatbot.knowledge import KNOWLEDGE_DIR
from sprechstunde.chatbot.service import ChatService
from sprechstunde.clock import Clock
from sprechstunde.documents import DocumentService, KeyRing, Limits
from sprechstunde.documents.service import Notify
from sprechstunde.media.aiortc_fork import check as fork_check
from sprechstunde.media.aiortc_fork import transport as fork_transport
from sprechstunde.networks import parse_networks
from sprechstunde.rooms.offices import OfficeDirectory, load_offices
from sprechstunde.rooms.queue import QueueService
from sprechstunde.rooms.service import RoomError, RoomService
from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.scheduling.bookings import SchedulingService
from sprechstunde.scheduling.catalog import load_services
from sprechstunde.scheduling.mail import BookingLinks, BookingMailer, SmtpMailer, SmtpSettings
from sprechstunde.signaling.chat_history import ChatHistory
from sprechstunde.signaling.connection import HUB_KEY
from sprechstunde.signaling.hub import Admission, AdmissionError, SignalingHub
from sprechstunde.signaling.nodes import NodeRegistry
from sprechstunde.signaling.waiting import QueueEvents, WaitingRoom
from sprechstunde.store import DEFAULT_PREFIX, open_store
from sprechstunde.store.port import Store
from sprechstunde.store.retention import RetentionSweep
from sprechstunde.strings import Catalog
from sprechstunde.web.booking import api as booking_api
from sprechstunde.web.booking import pages as booking_pages
from sprechstunde.web.chatbot import api as chatbot_api
from sprechstunde.web.city import pages as city_pages
from sprechstunde.web.consultations import api as consultation_api
from sprechstunde.web.consultations import ending as ending_api
from sprechstunde.web.consultations import pages as statistics_page
from sprechstunde.web.core import api, observability, openapi, phone, relay
from sprechstunde.web.core.config import Config, prepare_data_dir
from sprechstunde.web.core.errors import error_middleware
from sprechstunde.web.core.proxy import forwarded_middleware
from sprechstunde.web.core.ratelimit import close_limit_storage, open_limit_storage
from sprechstunde.web.core.render import Pages
from sprechstunde.web.core.security import headers_middleware, response_prepared
from sprechstunde.web.core.services import SERVICES, LoginThrottle, RequestThrottle, Services
from sprechstunde.web.documents import api as documents_api
from sprechstunde.web.rooms import pages
from sprechstunde.web.waiting import api as queue_api

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent.parent / "static"
# the retention sweep of this app (SECURITY.md, "Personal data and retention"); tests run it by hand
RETENTION = web.AppKey("retention", RetentionSweep)


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
        node=config.node_name if config.redis_url else None,
    )


def build_scheduling(
    config: Config,
    store: Store,
    offices: OfficeDirectory,
    signer: TokenSigner,
    queue: QueueService,
    clock: Any,
) -> tuple[SchedulingService, BookingMailer]:
    """The scheduling service and its mail job, from the services file and the SMTP settings."""
    catalog = load_services(offices, config.services_path)
    staff = StaffDirectory(store, clock)
    scheduling = SchedulingService(store, offices, catalog, staff, signer, queue, clock)
    mailer = None
    if config.smtp_host:
        mailer = SmtpMailer(
            SmtpSettings(
                host=config.smtp_host,
                port=config.smtp_port,
                username=config.smtp_username,
                password=config.smtp_password,
                sender=config.smtp_sender,
                security=config.smtp_security,
            )
        )
    job = BookingMailer(scheduling, store, BookingLinks(config.public_url), mailer, clock)
    scheduling.on_change = job.wake
    return scheduling, job


def build_services(config: Config, store: Store | None = None) -> Services:
    secret = prepare_data_dir(config.data_dir)
    store = store or open_store(
        config.database_path, redis_url=config.redis_url, redis_prefix=config.redis_prefix
    )
    signer = TokenSigner(secret)
    # The one clock of every service (sprechstunde/clock.py); tests move it to an opening hour.
    clock = Clock()
    rooms = RoomService(store, signer, clock)
    limit_storage = open_limit_storage(config.redis_url, config.redis_prefix or DEFAULT_PREFIX)

    async def admit(token: str) -> Admission:
        try:
            grant, room = await rooms.admit(token)
        except RoomError as exc:
            raise AdmissionError(exc.code, exc.message) from None
        observability.room_id.set(room.room_id)  # later log lines of this socket name the room
        # one live connection per seat: a link opened again replaces its old connection (rooms.service)
        seat = rooms.seat(grant, token)
        return Admission(room_id=room.room_id, role=grant.role, expires_at=room.expires_at, seat=seat)

    # On Redis, several processes may serve the city: rooms are pinned to nodes and change signals
    # travel over the store's channels (signaling/nodes.py). One process on SQLite needs neither.
    bus = store if config.redis_url else None
    hub = SignalingHub(admit, config.ice, config.media_mode, bus=bus)
    hub.history = ChatHistory(store, clock)  # the chat so far, for whoever joins later (issue 17)
    if bus is not None:
        hub.nodes = NodeRegistry(
            store, config.node_name, config.public_url, hub.load, address=config.node_address, clock=clock
        )
    # "document-added" / "document-removed" reach everyone connected to the live room at once.
    documents = build_documents(config, store, notify=hub.publish, clock=clock)
    # Offices are read once; a mistake stops start-up with "<file>: <field>: <problem>".
    offices = load_offices(config.offices_path, holiday_state=config.holiday_state)
    queue = QueueService(store, offices, signer, rooms, clock=clock)
    # appointments (services file, SMTP from config)
    scheduling, booking_mailer = build_scheduling(config, store, offices, signer, queue, clock)
    return Services(
        config=config,
        store=store,
        signer=signer,
        rooms=rooms,
        staff=StaffDirectory(store, clock),
        pages=Pages(Catalog()),
        hub=hub,
        secret=secret,
        # rate limits (web/core/ratelimit.py): per client network, on Redis shared by every node
        throttle=LoginThrottle(limit_storage),
        queue_throttle=RequestThrottle(per_network=30, storage=limit_storage),
        booking_throttle=RequestThrottle(per_network=60, storage=limit_storage),
        chatbot_throttle=RequestThrottle(per_network=60, storage=limit_storage),
        documents=documents,
        queue=queue,
        waiting=WaitingRoom(queue, offices, rooms.admission_links, clock, QueueEvents(bus)),
        scheduling=scheduling,
        booking_mailer=booking_mailer,
        # the knowledge base is indexed at the first message; a broken city file stops start-up
        # the city's [topics.*]: its own chatbot file, else the city file (--city) where they may live too
        chatbot=ChatService(
            store,
            config.chatbot_knowledge or KNOWLEDGE_DIR,
            city_path=config.chatbot_city or config.city_path,
            retention_days=config.chat_retention_days,
        ),
    )


def create_app(config: Config, store: Store | None = None) -> web.Application:
    fork_check.check()
    fork_transport.set_host_addresses(config.media_addresses)
    services = build_services(config, store)
    app = web.Application(
        middlewares=[
            forwarded_middleware(parse_networks(config.trusted_proxies, "--trusted-proxy")),
            observability.request_id_middleware,
            headers_middleware,
            error_middleware(services.pages.error),
            observability.store_middleware(services.pages.error),  # 503 while Redis is away
        ],
        client_max_size=1024 * 1024,
    )
    app[SERVICES] = services
    app[HUB_KEY] = services.hub
    # the city file (--city): checked now, a mistake stops start-up (web/city/settings.py)
    app[city_pages.CITY] = city_pages.load_for(services)
    # Deletes expired records for good and erases closed tickets' personal fields (store/retention.py).
    tickets = services.queue.tickets
    ticket_retention = config.ticket_retention_days * 86400
    sweep = app[RETENTION] = RetentionSweep(
        services.store, {"tickets": lambda: tickets.erase_closed(ticket_retention)}
    )
    app.add_routes(api.routes)
    app.add_routes(documents_api.routes)
    app.add_routes(pages.routes)
    app.add_routes(queue_api.routes)
    app.add_routes(consultation_api.routes)
    app.add_routes(ending_api.routes)
    app.add_routes(statistics_page.routes)
    app.add_routes(booking_api.routes)
    app.add_routes(booking_pages.routes)
    app.add_routes(openapi.routes)
    app.add_routes(chatbot_api.routes)
    app.add_routes(city_pages.routes)
    app.router.add_get("/ws", relay.signaling_entry)
    observability.setup(app, services)  # /readyz, /metrics, X-Request-Id
    phone.setup(app, services)  # the SIP endpoint when --sip-listen is given (sprechstunde/phone)
    # security headers also on raised redirects, streamed downloads and WebSocket upgrades
    app.on_response_prepare.append(response_prepared)
    app.router.add_static("/static", STATIC)

    async def startup(app: web.Application) -> None:
        # Removes half-written uploads of a crash, runs due retention jobs, then keeps running them.
        await services.documents.start(config.retention_interval)
        # Purges expired records and closed tickets' personal data, now and every retention interval.
        await sweep.start(config.retention_interval)
        # Abandons waiting citizens whose grace ran out, every 5 s.
        await services.waiting.start()
        # With several nodes: announce this one, and listen for events of the rooms it hosts.
        await services.hub.start()
        if services.hub.nodes is not None:
            await services.hub.nodes.start()
        # Gives back seats that a version before issue 15 (finding 8) left without a booking when killed.
        released = await services.scheduling.release_orphan_seats()
        if released:
            log.warning("released %d appointment seats that had no booking (left by a crash)", released)
        # Sends booking confirmations and 24-hour reminders when SMTP is configured.
        services.booking_mailer.start()

    async def shutdown(app: web.Application) -> None:
        # chat and roster written before signing off: a node a room moves to must not read an older copy
        await services.hub.flush()
        if services.hub.nodes is not None:
            await services.hub.nodes.close()  # signs off: this node's rooms move at once
        await services.hub.close()
        await services.waiting.close()
        await services.booking_mailer.close()
        await services.documents.close()
        await sweep.close()

    async def cleanup(app: web.Application) -> None:
        await services.store.close()
        await close_limit_storage(services.throttle.storage)

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app
