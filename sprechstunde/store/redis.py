"""Redis adapter: the storage port shared by several server processes (`--redis URL`).

Layout under a configurable prefix (default "sprechstunde:"); a kind or queue name has ":" and "%"
percent-escaped so that no two names share a key:

    {p}r:{kind}:{key}    a record: JSON {"e": expires_at | null, "v": value}, with native expiry (PX)
    {p}i:{kind}          the keys of a kind: a sorted set, every score 0, so ZRANGEBYLEX serves `scan(prefix)`
    {p}q:{queue}         a queue's item state: a hash, field "i:{key}" = JSON [lane, score] and, while the
                         item is claimed, "c:{key}" = JSON [claimed_by, claimed_at]
    {p}l:{queue}:{lane}  a lane's waiting (unclaimed) items: a sorted set scored by score; equal scores sort
                         by member, so a lane is in (score, key) order

Expiry: Redis drops an expired record by itself (PX), and the record also carries its expiry time by the
store's clock, which every read checks. With the default clock the two agree; the second check is what lets
the contract suite move a fake clock, and keeps a record that is due from being seen in the last
milliseconds before Redis removes it. Index entries of vanished records are removed lazily by `scan`.

Everything that must be atomic is one Lua script (create, incr, delete, scan with its clean-up, enqueue, the
claims, dequeue) or a WATCH/MULTI transaction (compare_and_set and compare_and_set_many, which compare
decoded JSON in Python exactly as the embedded adapter does). Scripts build some key names from the
prefix, so the adapter wants one Redis server (or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError, WatchError

from sprechstunde.store import redis_scripts as scripts
from sprechstunde.store.port import Change, Put, QueueItem, Record, check_distinct

DEFAULT_PREFIX = "sprechstunde:"


class StoreUnavailable(Exception):
    """The store's service cannot be reached; the message is fit for an operator."""


def _name(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def _glob(text: str) -> str:
    """`text` as a literal in a SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _item(key: str, state: str, claim: str | None) -> QueueItem:
    lane, score = json.loads(state)
    if claim is None:
        return QueueItem(key, lane, float(score))
    claimed_by, claimed_at = json.loads(claim)
    return QueueItem(key, lane, float(score), claimed_by, claimed_at)


MAX_CONNECTIONS = 64
POOL_WAIT_SECONDS = 5.0


class RedisStore:
    """The `Store` on a Redis server, for several processes sharing state."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
        client: Redis | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._clock = clock
        self._client: Redis | None = client or Redis.from_pool(
            # A burst of joins must wait for a free connection, not fail: redis-py's default pool
            # raises once its connections are all in use.
            BlockingConnectionPool.from_url(
                url, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_SECONDS
            )
        )
        r = self._client
        self._create = r.register_script(scripts.CREATE)
        self._incr = r.register_script(scripts.INCR)
        self._delete = r.register_script(scripts.DELETE)
        self._scan = r.register_script(scripts.SCAN)
        self._prune = r.register_script(scripts.PRUNE)
        self._enqueue = r.register_script(scripts.ENQUEUE)
        self._claim_first = r.register_script(scripts.CLAIM_FIRST)
        self._claim_item = r.register_script(scripts.CLAIM_ITEM)
        self._dequeue = r.register_script(scripts.DEQUEUE)

    @property
    def _r(self) -> Redis:
        if self._client is None:
            raise RuntimeError("store is closed")
        return self._client

    async def ping(self) -> None:
        """Raise StoreUnavailable, with a one-line reason, when the server cannot be reached."""
        try:
            await self._r.ping()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"cannot reach Redis at {safe_url(self.url)}: {exc}") from None

    # --- key names ------------------------------------------------------------------------------

    def _record_prefix(self, kind: str) -> str:
        return f"{self.prefix}r:{_name(kind)}:"

    def _index(self, kind: str) -> str:
        return f"{self.prefix}i:{_name(kind)}"

    def _queue(self, queue: str) -> str:
        return f"{self.prefix}q:{_name(queue)}"

    def _lane_prefix(self, queue: str) -> str:
        return f"{self.prefix}l:{_name(queue)}:"

    # --- records --------------------------------------------------------------------------------

    def _envelope(self, value: Record, ttl: float | None) -> tuple[str, int | None]:
        """The stored JSON and the native expiry in milliseconds (None: never)."""
        if ttl is None:
            return _dumps({"e": None, "v": value}), None
        return _dumps({"e": self._clock() + ttl, "v": value}), max(1, math.ceil(ttl * 1000))

    def _live(self, raw: str | None) -> Record | None:
        if raw is None:
            return None
        rec = json.loads(raw)
        expires = rec.get("e")
        if expires is not None and expires <= self._clock():
            return None
        return rec["v"]

    async def get(self, kind: str, key: str) -> Record | None:
        return self._live(await self._r.get(self._record_prefix(kind) + key))

    async def put(self, kind: str, key: str, value: Record, *, ttl: float | None = None) -> None:
        data, px = self._envelope(value, ttl)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(self._record_prefix(kind) + key, data, px=px)
            pipe.zadd(self._index(kind), {key: 0})
            await pipe.execute()

    async def put_many(self, puts: Sequence[Put]) -> None:
        # One MULTI/EXEC: a SET per record and one ZADD per kind, sent and answered in one round trip.
        if not puts:
            return
        indexed: dict[str, dict[str, int]] = {}
        async with self._r.pipeline(transaction=True) as pipe:
            for put in puts:
                data, px = self._envelope(put.value, put.ttl)
                pipe.set(self._record_prefix(put.kind) + put.key, data, px=px)
                indexed.setdefault(put.kind, {})[put.key] = 0
            for kind, keys in indexed.items():
                pipe.zadd(self._index(kind), keys)
            await pipe.execute()

    async def create(self, kind: str, key: str, value: Record, *, ttl: float | None = None) -> bool:
        data, px = self._envelope(value, ttl)
        keys = [self._record_prefix(kind) + key, self._index(kind)]
        args = [key, repr(self._clock()), data, "" if px is None else str(px)]
        return await self._create(keys=keys, args=args) == 1

    async def compare_and_set(
        self, kind: str, key: str, expected: Record | None, new: Record, *, ttl: float | None = None
    ) -> bool:
        data, px = self._envelope(new, ttl)
        name = self._record_prefix(kind) + key
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(name)
                    # Compared as decoded JSON, like the embedded adapter.
                    if self._live(await pipe.get(name)) != expected:
                        await pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.set(name, data, px=px)
                    pipe.zadd(self._index(kind), {key: 0})
                    await pipe.execute()
                    return True
                except WatchError:
                    continue  # changed meanwhile: compare again with what is there now

    async def compare_and_set_many(self, changes: Sequence[Change]) -> bool:
        # WATCH every record, compare in Python (as compare_and_set does), then one MULTI/EXEC: Redis
        # applies a transaction whole, and a client killed before EXEC leaves nothing behind.
        check_distinct(changes)
        if not changes:
            return True
        names = [self._record_prefix(c.kind) + c.key for c in changes]
        writes = [self._envelope(c.new, c.ttl) for c in changes]
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*names)
                    current = await pipe.mget(names)
                    if any(self._live(raw) != c.expected for raw, c in zip(current, changes, strict=True)):
                        await pipe.unwatch()
                        return False
                    pipe.multi()
                    for change, name, (data, px) in zip(changes, names, writes, strict=True):
                        pipe.set(name, data, px=px)
                        pipe.zadd(self._index(change.kind), {change.key: 0})
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def incr(self, kind: str, key: str) -> int:
        keys = [self._record_prefix(kind) + key, self._index(kind)]
        return int(await self._incr(keys=keys, args=[key, repr(self._clock())]))

    async def delete(self, kind: str, key: str) -> bool:
        keys = [self._record_prefix(kind) + key, self._index(kind)]
        return await self._delete(keys=keys, args=[key, repr(self._clock())]) == 1

    async def scan(self, kind: str, prefix: str = "") -> list[tuple[str, Record]]:
        # Every score is 0, so the set is ordered by the keys' bytes, as SQLite orders TEXT (and Python
        # orders str). 0xFF never occurs in UTF-8, so prefix + 0xFF bounds every key with that prefix.
        low = "[" + prefix if prefix else "-"
        high = "(" + prefix + "\udcff" if prefix else "+"
        args = [self._record_prefix(kind), low, high, repr(self._clock())]
        flat = await self._scan(keys=[self._index(kind)], args=[self._encode(a) for a in args])
        out: list[tuple[str, Record]] = []
        for i in range(0, len(flat), 2):
            out.append((flat[i], json.loads(flat[i + 1])["v"]))
        return out

    async def purge_expired(self) -> int:
        """Redis deletes an expired record by itself (every record with a TTL carries PX); what remains
        is its key in the kind's index (e.g. a session id), dropped here in bounded steps."""
        removed = 0
        async for index in self._r.scan_iter(match=_glob(self.prefix) + "i:*", count=500):
            start = 0
            while True:
                seen, gone = await self._prune(
                    keys=[index], args=[self.prefix + "r:" + index[len(self.prefix) + 2 :] + ":", start, 500]
                )
                removed += gone
                if seen < 500:
                    break
                start += seen - gone
        return removed

    @staticmethod
    def _encode(arg: str) -> bytes:
        # surrogateescape turns the "\udcff" sentinel into the single byte 0xFF.
        return arg.encode("utf-8", "surrogateescape")

    # --- ordered queues -------------------------------------------------------------------------

    def _claim(self, claimant: str) -> tuple[str, float]:
        now = self._clock()
        return _dumps([claimant, now]), now

    async def enqueue(self, queue: str, key: str, *, lane: str, score: float, replace: bool = False) -> bool:
        score = float(score)
        args = [
            key,
            self._lane_prefix(queue),
            lane,
            repr(score),
            _dumps([lane, score]),
            "1" if replace else "0",
        ]
        return await self._enqueue(keys=[self._queue(queue)], args=args) == 1

    async def claim_first(
        self, queue: str, lanes: Sequence[str], claimant: str, *, max_score: float | None = None
    ) -> QueueItem | None:
        lanes = list(lanes)
        if not lanes:
            return None
        limit = "+inf" if max_score is None else repr(float(max_score))
        claim, now = self._claim(claimant)
        hit = await self._claim_first(
            keys=[self._queue(queue)], args=[self._lane_prefix(queue), limit, claim, *lanes]
        )
        if hit is None:
            return None
        lane, score = json.loads(hit[1])
        return QueueItem(hit[0], lane, float(score), claimant, now)

    async def claim_item(
        self, queue: str, key: str, claimant: str, *, lanes: Sequence[str] | None = None
    ) -> QueueItem | None:
        claim, now = self._claim(claimant)
        lane_args = ["1"] if lanes is None else ["0", *lanes]
        state = await self._claim_item(
            keys=[self._queue(queue)], args=[key, self._lane_prefix(queue), claim, *lane_args]
        )
        if state is None:
            return None
        lane, score = json.loads(state)
        return QueueItem(key, lane, float(score), claimant, now)

    async def queue_item(self, queue: str, key: str) -> QueueItem | None:
        state, claim = await self._r.hmget(self._queue(queue), [f"i:{key}", f"c:{key}"])
        return None if state is None else _item(key, state, claim)

    async def queued(
        self, queue: str, lanes: Sequence[str] | None = None, *, claimed: bool | None = False
    ) -> list[QueueItem]:
        if lanes is not None:
            lanes = set(lanes)
            if not lanes:
                return []
        fields: dict[str, str] = await self._r.hgetall(self._queue(queue))
        items = []
        for field, state in fields.items():
            if not field.startswith("i:"):
                continue
            key = field[2:]
            item = _item(key, state, fields.get(f"c:{key}"))
            if lanes is not None and item.lane not in lanes:
                continue
            if claimed is not None and (item.claimed_by is not None) != claimed:
                continue
            items.append(item)
        items.sort(key=lambda i: (i.score, i.key))
        return items

    async def dequeue(
        self, queue: str, key: str, *, only_unclaimed: bool = False, claimant: str | None = None
    ) -> bool:
        args = [
            key,
            self._lane_prefix(queue),
            "1" if only_unclaimed else "0",
            claimant or "",
            "0" if claimant is None else "1",
        ]
        return await self._dequeue(keys=[self._queue(queue)], args=args) == 1

    # --- channels -------------------------------------------------------------------------------

    def _channel(self, channel: str) -> str:
        return f"{self.prefix}c:{_name(channel)}"

    async def publish(self, channel: str, message: Record) -> None:
        await self._r.publish(self._channel(channel), _dumps(message))

    async def subscribe(self, channel: str) -> RedisSubscription:
        subscription = RedisSubscription(self._r, self._channel(channel))
        await subscription.start()
        return subscription

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class RedisSubscription:
    """One channel on its own pub/sub connection; after a lost connection it resubscribes by itself
    (with a growing pause), so a Redis restart only costs the messages sent while it was away."""

    RETRY_MAX = 5.0

    def __init__(self, client: Redis, name: str) -> None:
        self._client = client
        self._name = name
        self._pubsub: Any = None

    async def start(self) -> None:
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self._name)

    async def next(self) -> Record:
        pause = 0.2
        while True:
            try:
                if self._pubsub is None:
                    await self.start()
                    pause = 0.2
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except (RedisError, OSError):
                await self._drop()
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.RETRY_MAX)
                continue
            if message is not None and message.get("type") == "message":
                return json.loads(message["data"])

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except (RedisError, OSError):
                pass

    async def close(self) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(self._name)
            except (RedisError, OSError):
                pass
        await self._drop()
