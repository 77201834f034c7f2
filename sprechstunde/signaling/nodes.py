"""Several server processes on one Redis: which nodes are alive, and which node hosts which room.

A room's media runs in exactly one process (every participant's peer connection must be where the
forwarding is), so each room is pinned to one node. The pin is made when the room is first used, to the
live node with the fewest participants (ties: the node asked, so a lone node never redirects), and it
lasts as long as the room. A participant whose WebSocket reaches another node is told where to go
(`wrong_node` with the node's id and WebSocket URL; behind the reverse proxy, `?node=<id>` selects the
upstream, see deploy/nginx.conf). When a node stops sending heartbeats, its pins count as void: the next
participant to reconnect re-pins the room to a live node and the consultation resumes there.

Everything else (queue, consoles, documents, tickets, bookings) is shared through the store and needs no
pinning; cross-node signals go over the store's channels.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

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

    def me(self) -> Node:
        rooms, participants = self._load()
        return Node(self.node_id, self.url, rooms, participants, self.address)

    async def beat(self) -> None:
        node = self.me()
        record = {
            "url": node.url,
            "rooms": node.rooms,
            "participants": node.participants,
            "address": node.address,
            "at": self._clock(),
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
            pending = self._pending(key, float(r.get("at", 0.0)))
            rooms = int(r.get("rooms", 0)) + pending
            participants = int(r.get("participants", 0)) + PENDING_PARTICIPANTS * pending
            nodes.append(Node(key, r["url"], rooms, participants, r.get("address")))
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

    async def home(self, room_id: str, expires_at: float) -> Node:
        """The node that hosts `room_id`; pins it first if it has no live node (atomic, so two nodes
        asked at once agree)."""
        chosen: list[Node] = []  # the node of the last attempt

        async def pin_to_live_node(pin: Record | None) -> Record | None:
            nodes = {n.node_id: n for n in await self.alive()}
            if pin is not None and pin.get("node") in nodes:
                chosen[:] = [nodes[pin["node"]]]
                return pin  # pinned to a live node: left as it is
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
