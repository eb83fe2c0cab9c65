"""The shared gateway budget on Redis: the stores, the limiters the runners use, per-process reuse.

Slots in flight are a sorted set of leases (lease id → expiry) taken and given back by small Lua
scripts, so each step is atomic; a slot given back pushes a token that one waiter takes with
``BLPOP``. The rate is ``limits``' moving window on the same connection pool. Within one process,
the waiters of one budget queue on a local lock, so one of them at a time asks Redis; a process
keeps one client per storage URL (sync), or per event loop and URL (async, shared by the loop's
sessions, closed when the last leaves).

The ``redis`` and ``limits`` packages come with the ``budget`` extra and are imported only when a
connection sets ``budget_storage``; without them that connection fails with
:class:`~vexora_provider.exceptions.VexoraBudgetError` naming the extra.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from vexora_provider._urls import StorageURL
from vexora_provider.exceptions import VexoraBudgetError
from vexora_provider.hooks import _retry
from vexora_provider.hooks._budget import (
    HIT,
    WAITS,
    AwaitRelease,
    BudgetPlan,
    Op,
    RateOp,
    Script,
    Sleep,
    acquire_steps,
    arun,
    run,
)
from vexora_provider.hooks._shared import LoopShared

__all__ = ["BUDGET_EXTRA", "AsyncSharedBudget", "SharedBudget", "async_budget", "sync_budget"]

log = logging.getLogger("vexora_provider.hooks.vexora")

BUDGET_EXTRA = "airflow-provider-vexora[budget]"

# KEYS: 1 leases (sorted set: lease id -> expiry in ms), 2 pause, 3 wake list. Times are Redis's
# own clock, so hosts with skewed clocks still agree on when a lease expires.
_ACQUIRE = """
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return -pause end
local limit = tonumber(ARGV[1])
if limit == 0 then return 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[2]) - 1)
  redis.call('PEXPIRE', KEYS[3], 2000)
end
return 1
"""
_RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_PAUSE = """
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
end
return 1
"""
SCRIPTS = {"acquire": _ACQUIRE, "release": _RELEASE, "renew": _RENEW, "pause": _PAUSE}


def _libraries() -> tuple[Any, Any]:
    try:
        import limits
        import limits.aio.storage
        import limits.aio.strategies
        import limits.storage
        import limits.strategies
        import redis
        import redis.asyncio
    except ImportError as err:
        raise VexoraBudgetError(
            f"extra budget_storage needs the redis and limits packages ({err.name} is missing): "
            f"pip install '{BUDGET_EXTRA}' on every worker and triggerer"
        ) from None
    return redis, limits


def _options(retry: Any, backoff: Any) -> dict[str, Any]:
    # Short timeouts: an unreachable storage fails the request within seconds. A few retries ride
    # out a restarting Redis.
    return {
        "socket_connect_timeout": 2.0,
        "socket_timeout": 5.0,
        "retry": retry(backoff(cap=1.0, base=0.05), 3),
        "health_check_interval": 30,
    }


def _limits_uri(storage: StorageURL) -> str:
    return (
        storage.url.replace("unix://", "redis+unix://", 1) if storage.url.startswith("unix:") else storage.url
    )


_errors: tuple[type[BaseException], ...] = ()


@contextmanager
def storage_errors(plan: BudgetPlan, doing: str) -> Iterator[None]:
    """Turn the Redis client's errors into :class:`VexoraBudgetError` naming ``budget_storage``."""
    global _errors
    if not _errors:
        redis, _ = _libraries()
        _errors = (redis.RedisError, OSError)  # limits passes the client's errors through
    try:
        yield
    except _errors as exc:
        detail = str(exc)
        if plan.storage.password:
            detail = detail.replace(plan.storage.password, "***")
        raise VexoraBudgetError(
            f"the shared gateway budget's storage {plan.storage.shown} (extra budget_storage) failed "
            f"while {doing}: {type(exc).__name__}: {detail}; no request is sent without the budget",
            outage=_is_outage(exc),
        ) from exc


def _is_outage(exc: BaseException) -> bool:
    """Whether the storage failed to answer (it may be back soon), not refused us (a setting)."""
    redis, _ = _libraries()
    failing_over = (
        redis.exceptions.BusyLoadingError,
        redis.exceptions.ReadOnlyError,
        redis.exceptions.TryAgainError,
        redis.exceptions.ClusterDownError,
        redis.exceptions.MasterDownError,
    )
    if isinstance(exc, failing_over):
        return True  # Redis restarting or failing over: back in a moment
    if isinstance(exc, redis.AuthenticationError | redis.ResponseError):
        return False  # a refused password or command: only a person fixes that
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError)


class _Store:
    """What the sync and async stores share: scripts, rate items, per-key waiting locks."""

    def __init__(self, client: Any, window: Any, limits: Any) -> None:
        self.client = client
        self.window = window
        self.scripts = {name: client.register_script(text) for name, text in SCRIPTS.items()}
        self._limits = limits
        self._items: dict[tuple[int, int], Any] = {}

    def item(self, rate: tuple[int, int]) -> Any:
        found = self._items.get(rate)
        if found is None:
            found = self._items[rate] = self._limits.RateLimitItemPerSecond(*rate)
        return found


class SyncStore(_Store):
    """One Redis client per process and storage URL, shared by every sync hook (thread-safe)."""

    def __init__(self, storage: StorageURL) -> None:
        redis, limits = _libraries()
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(storage.url, **_options(Retry, ExponentialBackoff))
        window = limits.strategies.MovingWindowRateLimiter(
            limits.storage.RedisStorage(_limits_uri(storage), connection_pool=client.connection_pool)
        )
        super().__init__(client, window, limits)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def perform(self, plan: BudgetPlan, op: Op) -> object:
        if type(op) is Script:
            return self.scripts[op.name](keys=plan.keys, args=list(op.args))
        if type(op) is Sleep:
            _retry.sleep(op.seconds)
            return None
        if type(op) is AwaitRelease:
            return self.client.blpop([plan.keys[2]], timeout=op.seconds)
        assert plan.rate is not None
        assert isinstance(op, RateOp)
        if op is HIT:
            return self.window.hit(self.item(plan.rate), plan.key)
        return self.window.get_window_stats(self.item(plan.rate), plan.key).reset_time


class AsyncStore(_Store):
    """One asyncio Redis client per event loop and storage URL, shared by the loop's sessions."""

    def __init__(self, storage: StorageURL) -> None:
        redis, limits = _libraries()
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        client = redis.asyncio.Redis.from_url(storage.url, **_options(Retry, ExponentialBackoff))
        window = limits.aio.strategies.MovingWindowRateLimiter(
            limits.aio.storage.RedisStorage(
                "async+" + _limits_uri(storage),
                implementation="redispy",
                connection_pool=client.connection_pool,
            )
        )
        super().__init__(client, window, limits)
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def perform(self, plan: BudgetPlan, op: Op) -> object:
        if type(op) is Script:
            return await self.scripts[op.name](keys=plan.keys, args=list(op.args))
        if type(op) is Sleep:
            await _retry.asleep(op.seconds)
            return None
        if type(op) is AwaitRelease:
            return await self.client.blpop([plan.keys[2]], timeout=op.seconds)
        assert plan.rate is not None
        assert isinstance(op, RateOp)
        if op is HIT:
            return await self.window.hit(self.item(plan.rate), plan.key)
        return (await self.window.get_window_stats(self.item(plan.rate), plan.key)).reset_time

    async def aclose(self) -> None:
        await self.client.aclose()


# -- the limiters -------------------------------------------------------------------------------


class _Lease:
    __slots__ = ("_budget", "_lease_id")

    def __init__(self, budget: SharedBudget, lease_id: str) -> None:
        self._budget, self._lease_id = budget, lease_id

    def release(self) -> None:
        self._budget.give_back(self._lease_id)


class _AsyncLease:
    __slots__ = ("_budget", "_lease_id")

    def __init__(self, budget: AsyncSharedBudget, lease_id: str) -> None:
        self._budget, self._lease_id = budget, lease_id

    async def release(self) -> None:
        await self._budget.give_back(self._lease_id)


def _not_given_back(plan: BudgetPlan, exc: BaseException) -> None:
    log.warning(
        "Vexora %s: could not give back a slot (%s); it expires by itself in %.0fs",
        plan.describe(),
        type(exc).__name__,
        plan.lease_ms / 1000,
    )


class SharedBudget:
    """
    The shared budget as the sync runner's limiter (:class:`~._retry.Limiter`).

    :param plan: what is shared, and where.
    :param store: this process's client for the plan's storage.
    """

    def __init__(self, plan: BudgetPlan, store: SyncStore) -> None:
        self.plan = plan
        self._store = store

    def acquire(self) -> _Lease | None:
        """Block until the budget lets one more request go; the slot must be given back after it."""
        plan, store = self.plan, self._store
        lease_id = uuid.uuid4().hex
        lock = store.lock(plan.key)
        # Behind this process's waiters if there are any; else straight to Redis, taking the lock
        # only once this request has to wait too.
        locked = lock.locked() and lock.acquire()

        def perform(op: Op) -> object:
            nonlocal locked
            if not locked and isinstance(op, WAITS):
                locked = lock.acquire()
                return None  # the wait for the lock may have been the wait: look again first
            return store.perform(plan, op)

        try:
            with storage_errors(plan, "waiting for a request slot"):
                held = run(acquire_steps(plan, lease_id), perform)
        finally:
            if locked:
                lock.release()
        return _Lease(self, lease_id) if held else None

    def check(self) -> None:
        """Ping the storage; raise :class:`VexoraBudgetError` naming it if it cannot be used."""
        with storage_errors(self.plan, "answering a ping"):
            self._store.client.ping()

    def give_back(self, lease_id: str) -> None:
        """Free a slot; a failure only logs (the lease expires by itself)."""
        try:
            with storage_errors(self.plan, "giving back a slot"):
                self._store.perform(self.plan, Script("release", (lease_id, self.plan.max_in_flight or 1)))
        except VexoraBudgetError as exc:
            _not_given_back(self.plan, exc)

    def pause(self, seconds: float) -> None:
        """Hold every request of the merchant, in every process, for ``seconds``."""
        with storage_errors(self.plan, "pausing after a 429"):
            self._store.perform(self.plan, Script("pause", (max(1, int(seconds * 1000)),)))


class AsyncSharedBudget:
    """
    The shared budget as the async runner's limiter (:class:`~._retry.AsyncLimiter`).

    :param plan: what is shared, and where.
    :param store: the running loop's client for the plan's storage.
    """

    def __init__(self, plan: BudgetPlan, store: AsyncStore) -> None:
        self.plan = plan
        self._store = store

    async def acquire(self) -> _AsyncLease | None:
        """Wait until the budget lets one more request go; the slot must be given back after it."""
        plan, store = self.plan, self._store
        lease_id = uuid.uuid4().hex
        lock = store.lock(plan.key)
        locked = lock.locked() and await lock.acquire()  # as in SharedBudget.acquire

        async def perform(op: Op) -> object:
            nonlocal locked
            if not locked and isinstance(op, WAITS):
                locked = await lock.acquire()
                return None
            return await store.perform(plan, op)

        try:
            with storage_errors(plan, "waiting for a request slot"):
                held = await arun(acquire_steps(plan, lease_id), perform)
        finally:
            if locked:
                lock.release()
        return _AsyncLease(self, lease_id) if held else None

    async def give_back(self, lease_id: str) -> None:
        """Free a slot; a failure only logs (the lease expires by itself)."""
        try:
            with storage_errors(self.plan, "giving back a slot"):
                args = (lease_id, self.plan.max_in_flight or 1)
                await self._store.perform(self.plan, Script("release", args))
        except VexoraBudgetError as exc:
            _not_given_back(self.plan, exc)

    async def pause(self, seconds: float) -> None:
        """Hold every request of the merchant, in every process, for ``seconds``."""
        with storage_errors(self.plan, "pausing after a 429"):
            await self._store.perform(self.plan, Script("pause", (max(1, int(seconds * 1000)),)))


_sync_stores: dict[StorageURL, SyncStore] = {}
_sync_guard = threading.Lock()
_async_stores: LoopShared[StorageURL, AsyncStore] = LoopShared(AsyncStore.aclose)


def sync_budget(plan: BudgetPlan) -> SharedBudget:
    """The sync limiter of ``plan``, on this process's client for its storage."""
    with _sync_guard:
        store = _sync_stores.get(plan.storage)
        if store is None:
            with storage_errors(plan, "connecting"):
                store = _sync_stores[plan.storage] = SyncStore(plan.storage)
    return SharedBudget(plan, store)


@asynccontextmanager
async def async_budget(plan: BudgetPlan) -> AsyncIterator[AsyncSharedBudget]:
    """The async limiter of ``plan``, on the running loop's client (shared by the loop's sessions)."""
    _libraries()  # a missing package is a VexoraBudgetError before anything is made
    async with _async_stores.use(plan.storage, lambda: AsyncStore(plan.storage)) as store:
        yield AsyncSharedBudget(plan, store)
