"""Several server processes on one Redis: which nodes are alive, and which node hosts which room.

A room's media runs in exactly one process (every participant's peer connection must be where the
forwarding is), so each room is pinned to one node. The pin is made when the room is first used, to the
live node with the fewest participants (ties: the node asked, so a lone node never redirects), and it
lasts as long as the room. A participant whose WebSocket reaches another node is told where to go
(`wrong_node` with the node's id and WebSocket URL; behind the reverse proxy, `?node=<id>` selects the
upstream, see deploy/nginx.conf). When a node stops sending heartbeats, its pins count as void: the next
participant to reconnect re-pins the room to a live node and the consultation resumes there.

A killed node still looks alive for up to NODE_TTL_SECONDS, and clients sent there find nobody (issue 21:
7.7 s until both had video again, the page giving up after three redirects). So before answering
`wrong_node` a node checks the room's node itself (`check`): with its address known, GET /healthz there
(a refused connection is proof that the process is gone; a slow answer proves nothing), else the age of
its last heartbeat. A node found gone is dropped from the registry at once and the room re-pinned to a
live node in the same hello. A client may say which node it could not reach (`hello` `unreachable`): that
only makes the check fresh, it never moves a room by itself.

Everything else (queue, consoles, documents, tickets, bookings) is shared through the store and needs no
pinning; cross-node signals go over the store's channels.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from sprechstunde.clock import Now
from sprechstunde.store.port import Record, Store, update
from sprechstunde.tasks import stop

log = logging.getLogger(__name__)

NODE_KIND = "node"
PIN_KIND = "room-node"
HEARTBEAT_SECONDS = 2.0
# A node missing three heartbeats is gone: its rooms move on the next reconnect (well within 10 s).
NODE_TTL_SECONDS = 6.0
# A room this node has just sent to another node counts there as this many participants until that node's
# next heartbeat shows it (a consultation is two people): without it, a burst of joins between two
# heartbeats would all go to the node that looked emptiest at the last one.
PENDING_PARTICIPANTS = 2
# Checking a node before sending a client there: how long its /healthz may take (a refused connection
# answers at once), how long an answer counts, and how often a client's report may force a fresh check.
PROBE_TIMEOUT_SECONDS = 1.0
PROBE_FRESH_SECONDS = 0.5
PROBE_FORCED_EVERY_SECONDS = 0.2
# Without an address to ask (a node listening on every interface), or when a refused connection proves
# nothing (a loopback address of another host): gone once its heartbeat has not changed for this long, as
# this node's clock measures it (the heartbeat's own time is the other node's clock, which may be skewed,
# and a slow store delays it) — two missed beats, and a client could not reach it.
STALE_SECONDS = 2 * HEARTBEAT_SECONDS + 0.5

Load = Callable[[], tuple[int, int]]
"""(live rooms, connected participants) of this process."""


@dataclass(frozen=True)
class Node:
    node_id: str
    url: str  # the public base URL through which clients reach this node
    rooms: int = 0
    participants: int = 0
    # where other nodes reach it directly ("host:port"): `serve --workers` relays ?node= sockets there
    address: str | None = None
    at: float = 0.0  # when its last heartbeat was written (this node: now), by its own clock
    host: str | None = None  # the host name it runs on: a refused loopback address is proof only there

    @property
    def ws_url(self) -> str:
        """The signaling WebSocket of this node; `node` lets a reverse proxy route to it."""
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/ws"
        return urlunsplit((scheme, parts.netloc, path, f"node={self.node_id}", ""))


class NodeRegistry:
    def __init__(
        self,
        store: Store,
        node_id: str,
        url: str,
        load: Load,
        *,
        address: str | None = None,
        clock: Now = time.time,
        interval: float = HEARTBEAT_SECONDS,
        ttl: float = NODE_TTL_SECONDS,
    ) -> None:
        self._store = store
        self.node_id = node_id
        self.url = url
        self._load = load
        self.address = address
        self._clock = clock
        self._interval = interval
        self._ttl = ttl
        self._beating: asyncio.Task | None = None
        self._sent: dict[str, list[float]] = {}  # node id → when this node pinned rooms to it
        # node id → (when checked, alive?) of `check`; node id → the heartbeat time of a node found gone,
        # which is left out of `alive` until it sends a newer one (it may come back: a restarted worker)
        self._checked: dict[str, tuple[float, bool]] = {}
        self._gone: dict[str, float] = {}
        # node id → (its heartbeat time last read, when this node saw that value first, by its own clock)
        self._seen: dict[str, tuple[float, float]] = {}
        # node id → the check under way: concurrent hellos for a dead node's rooms share one probe
        self._probing: dict[str, asyncio.Task[bool]] = {}
        self._http: aiohttp.ClientSession | None = None
        self.host = socket.gethostname()

    def me(self) -> Node:
        rooms, participants = self._load()
        return Node(self.node_id, self.url, rooms, participants, self.address, self._clock(), self.host)

    async def beat(self) -> None:
        node = self.me()
        record = {
            "url": node.url,
            "rooms": node.rooms,
            "participants": node.participants,
            "address": node.address,
            "at": self._clock(),
            "host": self.host,
        }
        await self._store.put(NODE_KIND, self.node_id, record, ttl=self._ttl)

    async def start(self) -> None:
        """Announce this node, then keep announcing it; a failed heartbeat (Redis away) is logged and
        retried, never fatal: open calls go on without the store."""
        if self._beating is None:
            try:
                await self.beat()
            except Exception:
                log.warning("node %s: first heartbeat failed", self.node_id, exc_info=True)
            self._beating = asyncio.ensure_future(self._beat_forever())

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.beat()
            except Exception as exc:  # a store outage must not end the loop
                log.warning("node %s: heartbeat failed: %s", self.node_id, exc)

    async def close(self) -> None:
        """Stop the heartbeat and leave at once, so this node's rooms move without waiting for expiry."""
        for probing in list(self._probing.values()):
            await stop(probing)
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._beating is not None:
            await stop(self._beating)
            self._beating = None
            try:
                await self._store.delete(NODE_KIND, self.node_id)
            except Exception:
                log.warning("node %s: could not sign off", self.node_id, exc_info=True)

    async def alive(self) -> list[Node]:
        """Live nodes with their load; another node's counts include the rooms this node sent it after
        its last heartbeat."""
        nodes = []
        for key, r in await self._store.scan(NODE_KIND):
            at = float(r.get("at", 0.0))
            if key in self._gone:
                if at <= self._gone[key]:
                    continue  # found gone, and no heartbeat since
                del self._gone[key]  # back (a restarted worker)
            seen = self._seen.get(key)
            if seen is None or seen[0] != at:
                self._seen[key] = (at, self._clock())  # a heartbeat this node has not seen before
            pending = self._pending(key, at)
            rooms = int(r.get("rooms", 0)) + pending
            participants = int(r.get("participants", 0)) + PENDING_PARTICIPANTS * pending
            nodes.append(Node(key, r["url"], rooms, participants, r.get("address"), at, r.get("host")))
        # this node as it is now (its stored record may be two seconds old), and alive even if a
        # heartbeat was missed
        return [n for n in nodes if n.node_id != self.node_id] + [self.me()]

    def _pending(self, node_id: str, reported_at: float) -> int:
        """Rooms this node pinned to `node_id` that its heartbeat of `reported_at` cannot show yet."""
        sent = self._sent.get(node_id)
        if not sent:
            return 0
        sent[:] = [at for at in sent if at > reported_at and at > self._clock() - self._ttl]
        return len(sent)

    async def find(self, node_id: str) -> Node | None:
        """A live node by id (None when it is not, or no longer, alive)."""
        return next((n for n in await self.alive() if n.node_id == node_id), None)

    async def check(self, node: Node, *, fresh: bool = False) -> bool:
        """Whether `node` (another one) still serves, asked directly: False only on proof that it is gone
        (its port refuses connections), or, without an address, when its heartbeat is overdue. An
        answer is reused for PROBE_FRESH_SECONDS unless `fresh` (a client could not reach it), which is
        honoured at most every PROBE_FORCED_EVERY_SECONDS per node."""
        now = self._clock()
        last = self._checked.get(node.node_id)
        if last is not None:
            age = now - last[0]
            if age < (PROBE_FORCED_EVERY_SECONDS if fresh else PROBE_FRESH_SECONDS):
                return last[1]
        probing = self._probing.get(node.node_id)
        if probing is None:
            probing = asyncio.ensure_future(self._probe(node))
            self._probing[node.node_id] = probing
            probing.add_done_callback(lambda done, key=node.node_id: self._probed(key, done))
        return await asyncio.shield(probing)

    def _probed(self, node_id: str, probe: asyncio.Task[bool]) -> None:
        if self._probing.get(node_id) is probe:
            del self._probing[node_id]
        if not probe.cancelled() and probe.exception() is None:
            self._checked[node_id] = (self._clock(), probe.result())

    def _beating_lately(self, node: Node) -> bool:
        """Whether `node`'s heartbeat changed within STALE_SECONDS, as this node saw it."""
        seen = self._seen.get(node.node_id)
        if seen is None or seen[0] != node.at:
            self._seen[node.node_id] = seen = (node.at, self._clock())
        return self._clock() - seen[1] <= STALE_SECONDS

    def _refusal_is_proof(self, node: Node) -> bool:
        """A refused connection proves `node` gone unless its address is a loopback one of another host
        (there it is some other machine's port, or none)."""
        assert node.address is not None
        host = urlsplit(f"//{node.address}").hostname or ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        return not loopback or node.host == self.host

    async def _probe(self, node: Node) -> bool:
        if not node.address:
            return self._beating_lately(node)
        if self._http is None:
            # a fresh connection each time: a kept-alive one to a killed node fails for another reason
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS),
            )
        try:
            async with self._http.get(f"http://{node.address}/healthz", allow_redirects=False) as response:
                await response.read()
                return True  # any answer: the process lives
        except (ConnectionRefusedError, aiohttp.ClientConnectorError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
                exc.os_error, ConnectionRefusedError
            ):
                return True  # unreachable from here is no proof: the heartbeat's expiry decides
            return self._beating_lately(node) if not self._refusal_is_proof(node) else False
        except (TimeoutError, aiohttp.ClientError, OSError):
            return True  # slow or odd: no proof that it is gone

    async def forget(self, node: Node) -> None:
        """`node` was found gone: leave it out from now on (here at once, on the other nodes by deleting
        its record) until it sends a newer heartbeat."""
        self._gone[node.node_id] = node.at
        log.warning("node %s does not answer: its rooms move", node.node_id)
        try:
            current = await self._store.get(NODE_KIND, node.node_id)
            if current is not None and float(current.get("at", 0.0)) <= node.at:
                await self._store.delete(NODE_KIND, node.node_id)
        except Exception as exc:
            log.warning("node %s: record not removed: %s", node.node_id, exc)

    async def home(self, room_id: str, expires_at: float, *, suspect: str | None = None) -> Node:
        """The node that hosts `room_id`, checked to be there (`check`; `suspect`: the node a client
        could not reach, checked afresh); a room with no live node is pinned first to the least-loaded
        one (atomic, so two nodes asked at once agree)."""
        for _ in range(3):
            choice = await self._home(room_id, expires_at)
            if choice.node_id == self.node_id or await self.check(choice, fresh=choice.node_id == suspect):
                return choice
            await self.forget(choice)
        return choice

    async def pin_here(self, room_id: str, expires_at: float) -> Node:
        """Pin `room_id` to this node unless a live node hosts it already; the node that hosts it. For a
        room whose media is bound to this process: a phone consultation, whose SIP call this node holds
        (the caller's audio then never crosses nodes). A room already live elsewhere stays there."""
        return await self._home(room_id, expires_at, here=True)

    async def _home(self, room_id: str, expires_at: float, *, here: bool = False) -> Node:
        chosen: list[Node] = []  # the node of the last attempt

        async def pin_to_live_node(pin: Record | None) -> Record | None:
            if pin is not None and pin.get("node") == self.node_id:
                # hosted here, and this node is alive by definition (as `alive` has it): the second
                # participant and every reconnect of a room here need not read the node list
                chosen[:] = [self.me()]
                return pin
            nodes = {n.node_id: n for n in await self.alive()}
            if pin is not None and pin.get("node") in nodes:
                chosen[:] = [nodes[pin["node"]]]
                return pin  # pinned to a live node: left as it is
            if here:  # this node, even before its first heartbeat is readable
                chosen[:] = [nodes.get(self.node_id) or self.me()]
                return {"node": self.node_id, "since": self._clock()}
            choice = min(nodes.values(), key=lambda n: (n.participants, n.rooms, n.node_id != self.node_id))
            chosen[:] = [choice]
            return {"node": choice.node_id, "since": self._clock()}

        ttl = max(60.0, expires_at - self._clock() + 60.0)
        pinned = await update(self._store, PIN_KIND, room_id, pin_to_live_node, ttl=ttl)
        choice = chosen[0]
        if pinned.written:
            if choice.node_id != self.node_id:
                self._sent.setdefault(choice.node_id, []).append(self._clock())
            if pinned.before is not None:
                log.info("room moved from gone node %s to %s", pinned.before.get("node"), choice.node_id)
        return choice
