"""What an operator sees of a running node: readiness, Prometheus metrics, request ids, JSON logs.

- `/readyz` answers 200 while the store answers (Redis: PING; SQLite: one query), 503 otherwise, so a load
  balancer stops sending new work to a node that cannot reach Redis. `/healthz` only says the process lives.
- A store outage never becomes a 500 with a stack trace: `store_middleware` turns the Redis client's
  connection and timeout errors (and SQLite's "database is locked"/I/O errors) into
  503 `{"error": {"code": "store_unavailable"}}`. Calls already running need no store (signaling and media
  live in this process), and the Redis client reconnects by itself on the next request after Redis is back.
- `/metrics` (Prometheus text format) from a registry of this app, never the library's global one. It is
  refused unless the caller's address is in `--metrics-allow` or it sends `Authorization: Bearer
  <--metrics-token>`. Counters are per process; gauges read from the store (queue lengths, documents) are
  the same on every node (aggregate them with max(), not sum()).
- Every request gets an id (a sane incoming `X-Request-Id` from the reverse proxy, else a fresh one), echoed
  in the response and put on every log line written while the request runs, with the room id once known.
  `--log-format json` writes one JSON object per line. Names, chat text and file names are never logged.
- Capability tokens (join, waiting room, download, booking manage and join links) are never logged, in
  either format: the access log masks them in the path, and `TokenFilter` on the log handler masks any
  token-shaped text, capability path segment or secret query value in every record — message, arguments,
  extras and traceback — whatever the call site passed (web.core.security.mask_tokens). A filter at the one
  place every line passes holds for lines written by code that does not know about tokens (aiohttp,
  redis, a future log call), which per-call masking cannot.
- A store outage in a WebSocket (a new console socket, `/ws?node=`) closes the socket with 1013 "try again
  later" and the reason `store_unavailable`, never an HTTP 503 written into the upgraded connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from sprechstunde.documents.service import DOC_KIND
from sprechstunde.networks import Network, parse_networks
from sprechstunde.rooms.consultations import ConsultationRecord
from sprechstunde.rooms.queue import QUEUE
from sprechstunde.store import StoreUnavailable, ready
from sprechstunde.store.outage import STORE_ERRORS, store_outage
from sprechstunde.store.port import Store
from sprechstunde.web.core.errors import json_error
from sprechstunde.web.core.proxy import address_in
from sprechstunde.web.core.security import CLOSE_TRY_AGAIN, end_socket, mask_tokens
from sprechstunde.web.core.services import SERVICES, Services

log = logging.getLogger(__name__)

READY_TIMEOUT = 1.0  # seconds: a store slower than this counts as unavailable for /readyz
LOG_FORMATS = ("text", "json")
# wait before a consultation (or until the citizen gave up), in seconds: 30 s … 2 h
WAIT_BUCKETS = (30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200)

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
room_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("room_id", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
UNAVAILABLE_TEXT = "the service is briefly unavailable; please try again shortly"


# --- readiness ------------------------------------------------------------------------------------


async def check_store(store: Store, timeout: float = READY_TIMEOUT) -> float:
    """Seconds one round trip to the store took; StoreUnavailable when it fails or is too slow."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await ready(store)  # Redis: PING
            await store.get("readyz", "probe")  # every adapter: one real read
    except TimeoutError:
        raise StoreUnavailable(f"the store did not answer within {timeout:g} s") from None
    except STORE_ERRORS as exc:
        raise StoreUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return time.perf_counter() - started


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz — 200 while this node can serve new work, 503 (JSON) while its store is unreachable."""
    services = request.app[SERVICES]
    try:
        seconds = await check_store(services.store)
    except StoreUnavailable as exc:
        log.warning("not ready: store unavailable: %s", exc)
        return web.json_response(
            {"status": "unavailable", "error": {"code": "store_unavailable", "message": str(exc)}},
            status=503,
        )
    return web.json_response({"status": "ok", "store_ms": round(seconds * 1000, 2)})


def store_middleware(render_page: Callable[[web.Request, int, str], web.Response]) -> Callable:
    """503 `store_unavailable` instead of a 500 while Redis (or the SQLite file) cannot be used; a WebSocket
    is closed with 1013 and the reason `store_unavailable` instead.

    Sits inside the error middleware, so it sees the adapter's exception before the generic 500."""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
        try:
            return await handler(request)
        except STORE_ERRORS as exc:
            if not store_outage(exc):
                raise
            path = loggable_path(request.path)
            log.warning("store unavailable on %s %s: %s", request.method, path, type(exc).__name__)
            # a WebSocket (open already, or its handshake): close 1013, never a 503 into the socket
            ended = await end_socket(request, CLOSE_TRY_AGAIN, "store_unavailable", UNAVAILABLE_TEXT)
            if ended is not None:
                return ended
            if request.path.startswith("/api/"):
                response = json_error(503, "store_unavailable", UNAVAILABLE_TEXT)
            else:
                response = render_page(request, 503, "error.unavailable")
            response.headers["Retry-After"] = "5"
            return response

    return middleware


# --- request ids and logs --------------------------------------------------------------------------


def new_request_id() -> str:
    return secrets.token_hex(8)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    """One id per request: the proxy's `X-Request-Id` when it looks like one, else a fresh one. It is on
    every log line of the request and echoed in the response (see `echo_request_id`)."""
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _REQUEST_ID.match(incoming) else new_request_id()
    request_id.set(rid)  # the handler runs in this task's context: its log lines carry the id
    match = request.match_info.get("room_id")
    room_id.set(match if match and len(match) <= 64 else None)
    return await handler(request)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches WebSocket upgrades and static files, whose headers go out before
    a middleware could add one."""
    rid = request_id.get()  # set by request_id_middleware in this request's task
    if rid:
        response.headers["X-Request-Id"] = rid


class ContextFilter(logging.Filter):
    """Puts the current request and room id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.room_id = room_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, room_id (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "room_id": getattr(record, "room_id", None),
        }
        for extra in ("method", "path", "status", "duration_ms"):
            if hasattr(record, extra):
                entry[extra] = getattr(record, extra)
        if record.exc_info or record.exc_text:
            # TokenFilter left the masked traceback in exc_text
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


# what every LogRecord has; any other attribute came in through `extra=` (path, method …)
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_TRACEBACKS = logging.Formatter()


class TokenFilter(logging.Filter):
    """Masks capability tokens in every record that reaches the handler: the formatted message (its
    arguments included), string extras, the traceback and the stack. It sits on the handler, not on a
    logger, so that it sees the records of every logger (aiohttp, redis, this project)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: logging reports it when formatting
            return True
        masked = mask_tokens(message)
        if masked != message:
            record.msg, record.args = masked, None
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, name, mask_tokens(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_tokens(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_tokens(record.stack_info)
        return True


def setup_logging(level: str = "info", log_format: str = "text") -> None:
    """Root logging for `serve`: text for a terminal, JSON lines for a log collector."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}")
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.addFilter(TokenFilter())  # no capability token in any line, whoever wrote it
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def loggable_path(path: str) -> str:
    """The request path with its capability tokens (join, waiting room, download, booking manage and join
    links) replaced by "…": they are capabilities, not log data."""
    return mask_tokens(path)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log without query strings, tokens, referrers or user agents: method, path,
    status, duration, request id."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = loggable_path(request.path)
        self.logger.info(
            "%s %s %s %.1fms",
            request.method,
            path,
            response.status,
            time * 1000,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status,
                "duration_ms": round(time * 1000, 1),
            },
        )


# --- metrics -----------------------------------------------------------------------------------------


def parse_allowlist(entries: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) for `--metrics-allow`; ValueError names the bad entry."""
    return parse_networks(entries, "--metrics-allow")


class LiveCollector(Collector):
    """Counters kept as plain numbers by the signaling hub and the media forwarder, read at scrape."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Any]:
        hub = self._services.hub
        rooms = GaugeMetricFamily("sprechstunde_active_rooms", "Rooms with a live call on this node")
        rooms.add_metric([], len(hub.rooms))
        yield rooms
        people = GaugeMetricFamily(
            "sprechstunde_active_participants", "Participants in live calls on this node (incl. reconnecting)"
        )
        people.add_metric([], sum(len(room.participants) for room in hub.rooms.values()))
        yield people
        messages = CounterMetricFamily(
            "sprechstunde_signaling_messages", "Signaling messages received, by type", labels=["type"]
        )
        for kind, count in sorted(hub.messages.items()):
            messages.add_metric([kind], count)
        yield messages
        errors = CounterMetricFamily(
            "sprechstunde_signaling_errors", "Signaling errors sent to clients, by code", labels=["code"]
        )
        for code, count in sorted(hub.errors.items()):
            errors.add_metric([code], count)
        yield errors
        frames = CounterMetricFamily(
            "sprechstunde_media_frames_forwarded",
            "Encoded media frames (Opus packets, VP8 pictures) handed to subscribers",
            labels=["kind"],
        )
        sent = CounterMetricFamily(
            "sprechstunde_media_bytes_forwarded",
            "Bytes of encoded media handed to subscribers",
            labels=["kind"],
        )
        for kind in sorted(hub.forwarding.frames):
            frames.add_metric([kind], hub.forwarding.frames[kind])
            sent.add_metric([kind], hub.forwarding.bytes[kind])
        yield frames
        yield sent
        transcoded = CounterMetricFamily(
            "sprechstunde_media_frames_transcoded",
            "Video frames decoded for a subscriber without a shared codec (its sender re-encodes them), "
            "and the phone bridge's 20 ms audio frames (G.711 to Opus and back, both directions); "
            "0 while everything, screens included, is forwarded and nobody is on the phone",
        )
        transcoded.add_metric([], hub.forwarding.decoded)
        yield transcoded


class Metrics:
    """The app's own registry and the metrics that are not read live from another component."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(LiveCollector(services))
        self.queue_length = Gauge(
            "sprechstunde_queue_length",
            "Citizens waiting (not yet called), by office; the same on every node",
            ["office"],
            registry=self.registry,
        )
        self.documents = Gauge(
            "sprechstunde_documents_stored",
            "Documents and links stored, by type",
            ["type"],
            registry=self.registry,
        )
        self.document_bytes = Gauge(
            "sprechstunde_documents_bytes", "Plaintext bytes of stored documents", registry=self.registry
        )
        self.store_up = Gauge(
            "sprechstunde_store_up", "1 if the store answered during this scrape", registry=self.registry
        )
        self.store_latency = Gauge(
            "sprechstunde_store_ping_seconds",
            "Round trip to the store (Redis PING + one read) during this scrape",
            registry=self.registry,
        )
        self.wait = Histogram(
            "sprechstunde_wait_seconds",
            "Time from arrival to being called (or giving up), by office",
            ["office"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.outcomes = Counter(
            "sprechstunde_consultations",
            "Consultations ended on this node, by office and outcome (resolved, ticket, no_show, abandoned)",
            ["office", "outcome"],
            registry=self.registry,
        )
        self.allow = parse_allowlist(services.config.metrics_allow)
        services.queue.log.observers.append(self.record_consultation)

    def record_consultation(self, record: ConsultationRecord) -> None:
        self.wait.labels(record.office).observe(record.wait_seconds)
        self.outcomes.labels(record.office, record.outcome).inc()

    async def refresh(self) -> None:
        """Read what lives in the store; on a store outage report it as down and keep the last values."""
        services = self.services
        try:
            seconds = await check_store(services.store)
        except StoreUnavailable:
            self.store_up.set(0)
            return
        self.store_up.set(1)
        self.store_latency.set(seconds)
        try:
            waiting: dict[str, int] = {office.id: 0 for office in services.waiting.offices}
            for item in await services.store.queued(QUEUE):
                office = item.lane.split(":", 1)[0]
                waiting[office] = waiting.get(office, 0) + 1
            for office, count in waiting.items():
                self.queue_length.labels(office).set(count)
            counts = {"file": 0, "link": 0}
            size = 0
            for _, record in await services.store.scan(DOC_KIND):
                if record.get("state") != "active":
                    continue
                kind = record.get("type", "file")
                counts[kind] = counts.get(kind, 0) + 1
                if kind == "file":
                    size += int(record.get("size", 0))
            for kind, count in counts.items():
                self.documents.labels(kind).set(count)
            self.document_bytes.set(size)
        except STORE_ERRORS:
            self.store_up.set(0)

    def allowed(self, request: web.Request) -> bool:
        config = self.services.config
        token = config.metrics_token
        if token:
            given = request.headers.get("Authorization", "")
            if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode()):
                return True
        return address_in(request.remote, self.allow)


METRICS = web.AppKey("metrics", Metrics)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics — Prometheus text format, for allowed addresses or the bearer token only."""
    collected = request.app[METRICS]
    if not collected.allowed(request):
        if collected.services.config.metrics_token and "Authorization" not in request.headers:
            response = json_error(401, "not_authenticated", "send Authorization: Bearer <metrics token>")
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return json_error(403, "forbidden", "metrics are not available to this address")
    await collected.refresh()
    body = generate_latest(collected.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def setup(app: web.Application, services: Services) -> None:
    """Routes, request ids and metrics of one app (called by web/core/app.py's create_app)."""
    app[METRICS] = Metrics(services)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.on_response_prepare.append(echo_request_id)
