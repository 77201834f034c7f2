"""Rate limits for anonymous requests and staff sign-in, shared by every node on Redis.

Counting is done by the `limits` library's sliding-window-counter strategy (two counters per limit and
identity, weighted by how far the current window has run: O(1) memory per key, one atomic Lua script per
hit on Redis). The same strategy code runs on either storage:

- Redis mode (`--redis`): `limits`' own Redis storage on the store's server, keys under
  "<redis prefix>limits:", each with a native TTL — every node sees the same counts.
- embedded mode (one process): `BoundedMemoryStorage` below — entries expire and are removed as time
  passes, and a hard cap on their number evicts the oldest first, so no flood of new names or addresses
  can grow memory without bound.

Clients are counted per network, not per address: an IPv4 address by itself, IPv6 by its /64 (one
household, one office LAN, one VM's routed prefix hands out billions of addresses), an IPv4-mapped IPv6
address as the IPv4 address it is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from math import floor

from limits import RateLimitItemPerMinute
from limits.aio.storage import SlidingWindowCounterSupport, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage.base import TimestampedSlidingWindow

DEFAULT_MAX_KEYS = 50_000


def client_network(address: str | None) -> str:
    """The unit a client is counted in: "192.0.2.7", "2001:db8:1:2::/64"; "unknown" when the address is
    not an IP address (a Unix socket: then every such client shares one count)."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class BoundedMemoryStorage(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """The embedded mode's counters: in this process, expiring, and never more than `max_keys`.

    Every counter lives for a fixed time from its creation (twice its window, as the strategy asks), so the
    counters of one expiry length expire in creation order: each length keeps its keys in an ordered dict,
    and every call first drops the expired ones from the fronts — amortised O(1), no timer, no scan. At the
    cap the counter closest to expiring goes first. Without awaits inside, each call is atomic on the loop.
    """

    STORAGE_SCHEME = None  # not reachable by URI; built directly

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.max_keys = max_keys
        self._clock = clock
        # key -> [count, expires_at]; by expiry length, keys in creation (= expiry) order
        self._counters: dict[str, list[float]] = {}
        self._by_length: dict[float, OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._counters)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def _sweep(self, now: float) -> None:
        for order in self._by_length.values():
            while order:
                key = next(iter(order))
                if self._counters[key][1] > now:
                    break
                del order[key], self._counters[key]

    def _evict_oldest(self) -> None:
        order = min(
            (o for o in self._by_length.values() if o), key=lambda o: self._counters[next(iter(o))][1]
        )
        key, _ = order.popitem(last=False)
        del self._counters[key]

    def _add(self, key: str, expiry: float, amount: int, now: float) -> int:
        self._sweep(now)
        counter = self._counters.get(key)
        if counter is None:
            while len(self._counters) >= self.max_keys:
                self._evict_oldest()
            counter = self._counters[key] = [0, now + expiry]
            self._by_length.setdefault(float(expiry), OrderedDict())[key] = None
        counter[0] = max(0, counter[0] + amount)
        return int(counter[0])

    def _count(self, key: str, now: float) -> int:
        self._sweep(now)
        counter = self._counters.get(key)
        return int(counter[0]) if counter else 0

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self._add(key, expiry, amount, self._clock())

    async def get(self, key: str) -> int:
        return self._count(key, self._clock())

    async def get_expiry(self, key: str) -> float:
        counter = self._counters.get(key)
        return counter[1] if counter else self._clock()

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        count = len(self._counters)
        self._counters.clear()
        self._by_length.clear()
        return count

    async def clear(self, key: str) -> None:
        # Zeroed, not removed: the key keeps its place in its expiry order and goes when it expires.
        counter = self._counters.get(key)
        if counter is not None:
            counter[0] = 0

    def _window(self, key: str, expiry: int, now: float) -> tuple[int, float, int, float]:
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous, current = self._count(previous_key, now), self._count(current_key, now)
        previous_ttl = 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, previous_ttl, current, current_ttl

    async def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = self._clock()
        previous, previous_ttl, current, _ = self._window(key, expiry, now)
        if floor(previous * previous_ttl / expiry + current) + amount > limit:
            return False
        self._add(self.sliding_window_keys(key, expiry, now)[1], 2 * expiry, amount, now)
        return True

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return self._window(key, expiry, self._clock())

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        for part in self.sliding_window_keys(key, expiry, self._clock()):
            await self.clear(part)


def open_limit_storage(redis_url: str | None, redis_prefix: str) -> Storage:
    """Redis (shared by all nodes) when the store is on Redis, else this process's bounded memory."""
    if not redis_url:
        return BoundedMemoryStorage()
    from limits.aio.storage import RedisStorage

    scheme, sep, rest = redis_url.partition("://")
    uri = f"async+redis+unix://{rest}" if scheme == "unix" else f"async+{scheme}{sep}{rest}"
    # redis-py's asyncio client (already the store's), not coredis; limits' keys under our prefix
    return RedisStorage(uri, implementation="redispy", key_prefix=f"{redis_prefix}limits")


async def close_limit_storage(storage: Storage) -> None:
    """Release the Redis connections (nothing to do in memory)."""
    bridge = getattr(storage, "bridge", None)
    client = getattr(bridge, "storage", None)
    if client is not None and hasattr(client, "aclose"):
        await client.aclose()


class RequestThrottle:
    """At most `per_network` requests of one kind (`scope`) per `window` seconds from one client network;
    every request counts, allowed or not — meant for anonymous endpoints (queue, bookings, chatbot)."""

    def __init__(self, per_network: int, window: int = 60, storage: Storage | None = None) -> None:
        self.storage = storage if storage is not None else BoundedMemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.limit = _per_seconds(per_network, window, "request")

    async def allow(self, scope: str, address: str | None) -> bool:
        """Count this request; False once the network is over its limit for `scope`."""
        return await self._limiter.hit(self.limit, scope, client_network(address))


def _per_seconds(amount: int, seconds: int, namespace: str) -> RateLimitItemPerMinute:
    if seconds % 60:
        raise ValueError("rate-limit windows are whole minutes")
    return RateLimitItemPerMinute(amount, seconds // 60, namespace=namespace)


class LoginThrottle:
    """Limits on FAILED staff sign-ins — so that an attacker's failures do not lock out the real user.

    Counted on every failure (wrong password, unknown or disabled account, alike):
      1. per (account, client network):       `per_pair` failures per `window` (default 5 per 15 min);
      2. per client network, any account:     `per_network` failures per `window` (default 30 per 15 min);
      3. per account, across all networks:    `per_account` failures per `account_window` (default 100 per
         hour) — the last resort against guessing spread over many networks.
    A sign-in is refused (429, before the password is even checked) when its network is over 2, or its
    (account, network) over 1, or its account over 3 *and* the network is not one the account signed in
    from successfully in the last `known_days` (default 30; remembered per (account, network) in the same
    storage). So someone who knows a staff member's user name can use up only their own network's
    allowance: the real user from another network still signs in — even while a distributed attack holds
    the account over 3, as long as they sign in from a network they used before (their office, their
    VPN). A new network during such an attack must wait until it subsides.

    Successful sign-ins are not counted (a morning rush behind one office NAT is fine); a success clears
    its (account, network) failures and marks the network as known for the account.

    Check and record are not one atomic step, so concurrent guesses could all pass the check before the
    first failure is recorded: sign-ins from one network are therefore checked one at a time in each
    process (a lock per network, removed when idle) — with k nodes at most k guesses overlap.
    Clients are counted per network (`client_network`: IPv6 per /64).
    """

    def __init__(
        self,
        storage: Storage | None = None,
        *,
        per_pair: int = 5,
        per_network: int = 30,
        per_account: int = 100,
        window: int = 15 * 60,
        account_window: int = 3600,
        known_days: int = 30,
    ) -> None:
        self.storage = storage if storage is not None else BoundedMemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.pair = _per_seconds(per_pair, window, "login-pair")
        self.network = _per_seconds(per_network, window, "login-network")
        self.account = _per_seconds(per_account, account_window, "login-account")
        self.known = _per_seconds(1, known_days * 86400, "login-known")
        # network -> [lock, how many sign-ins hold or wait for it]; removed when none do
        self._locks: dict[str, list] = {}

    @asynccontextmanager
    async def attempt(self, account: str, address: str | None) -> AsyncIterator[LoginAttempt]:
        """One sign-in: `async with throttle.attempt(name, ip) as attempt:` then `attempt.allowed`,
        and after checking the password `await attempt.failed()` or `await attempt.succeeded()`."""
        network = client_network(address)
        account = account[:64]  # longer names are no user names; they share one count
        entry = self._locks.setdefault(network, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                attempt = LoginAttempt(self, account, network)
                attempt.allowed = await self._allowed(account, network)
                yield attempt
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[network]

    async def _allowed(self, account: str, network: str) -> bool:
        if not await self._limiter.test(self.network, network):
            return False
        if not await self._limiter.test(self.pair, account, network):
            return False
        if await self._limiter.test(self.account, account):
            return True
        return await self._known(account, network)

    async def _known(self, account: str, network: str) -> bool:
        previous, _, current, _ = await self.storage.get_sliding_window(  # type: ignore[attr-defined]
            self.known.key_for(account, network), self.known.get_expiry()
        )
        return previous + current > 0


class LoginAttempt:
    """The state of one sign-in inside `LoginThrottle.attempt`."""

    def __init__(self, throttle: LoginThrottle, account: str, network: str) -> None:
        self._throttle = throttle
        self.account = account
        self.network = network
        self.allowed = False

    async def failed(self) -> None:
        limiter = self._throttle._limiter
        await limiter.hit(self._throttle.network, self.network)
        await limiter.hit(self._throttle.pair, self.account, self.network)
        await limiter.hit(self._throttle.account, self.account)

    async def succeeded(self) -> None:
        limiter = self._throttle._limiter
        await limiter.clear(self._throttle.pair, self.account, self.network)
        await limiter.clear(self._throttle.known, self.account, self.network)
        await limiter.hit(self._throttle.known, self.account, self.network)
