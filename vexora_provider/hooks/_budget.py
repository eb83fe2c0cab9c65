"""The shared gateway budget's plan and wait: what one merchant shares, and how a request waits.

Opt-in through the connection extras ``budget_storage`` (a Redis URL), ``max_in_flight`` and
``requests_per_second``. Every sync hook, async session, trigger and warehouse sync of the
merchant then takes its requests from one budget in Redis:

- in flight: one lease per request, each expiring after the longest a request can take (connect
  timeout + 2 × read timeout + 5 s), so a killed task cannot hold slots for ever; a slot given
  back wakes one waiter instead of everyone polling;
- per second: the ``limits`` library's moving window, in the same Redis;
- a 429 pauses every user of the merchant, not only the task that saw it.

The wait is written once, here, as a generator of storage operations that performs no I/O (the
attempt driver's pattern); :mod:`._budget_redis` carries them out, blocking or on the event loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TypeVar, cast

from vexora_provider._urls import StorageURL
from vexora_provider.config import VexoraConfig
from vexora_provider.hooks import _retry

__all__ = [
    "HIT",
    "RESET",
    "WAITS",
    "WAKE_WAIT",
    "AwaitRelease",
    "BudgetPlan",
    "Op",
    "RateOp",
    "Script",
    "Sleep",
    "acquire_steps",
    "arun",
    "rate_window",
    "run",
]

# How long one waiter blocks on "a slot was given back" before looking again (expired leases of
# killed tasks free slots without a wake-up).
WAKE_WAIT = 0.25
T = TypeVar("T")


def rate_window(rate: float) -> tuple[int, int]:
    """Return ``(requests, seconds)``: the whole-request window never above ``rate`` per second."""
    if rate >= 1:
        return int(rate), 1
    return 1, math.ceil(1 / rate)


@dataclass(frozen=True, slots=True)
class BudgetPlan:
    """
    What one connection shares, and under which Redis keys.

    :param storage: the Redis holding the budget.
    :param key: the merchant's budget key (merchant number and base URL).
    :param max_in_flight: requests in flight across every user, ``None`` for no cap.
    :param rate: ``(requests, seconds)`` of the shared rate window, ``None`` for no rate limit.
    :param lease_ms: how long a slot stays taken if it is never given back.
    """

    storage: StorageURL
    key: str
    max_in_flight: int | None
    rate: tuple[int, int] | None
    lease_ms: int

    @classmethod
    def of(cls, config: VexoraConfig) -> BudgetPlan | None:
        """The plan of a connection, ``None`` when it sets no ``budget_storage``."""
        if config.budget_storage is None:
            return None
        rate = config.requests_per_second
        return cls(
            storage=config.budget_storage,
            # Hash-tagged: all of a budget's keys land on one node of a Redis cluster.
            key=f"{{vexora-budget:{config.merchant_no}@{config.base_url}}}",
            max_in_flight=config.max_in_flight,
            rate=rate_window(rate) if rate else None,
            lease_ms=int((config.connect_timeout + 2 * config.read_timeout + 5.0) * 1000),
        )

    @property
    def keys(self) -> list[str]:
        """The leases, pause and wake-up keys, in the scripts' ``KEYS`` order."""
        return [f"{self.key}:leases", f"{self.key}:pause", f"{self.key}:wake"]

    def describe(self) -> str:
        """One phrase for logs, e.g. ``shared budget in redis://host:6379/0: at most 8 in flight …``."""
        parts = []
        if self.max_in_flight is not None:
            parts.append(f"at most {self.max_in_flight} in flight")
        if self.rate is not None:
            requests, seconds = self.rate
            parts.append(f"{requests} per {'second' if seconds == 1 else f'{seconds} s'}")
        limits = " and ".join(parts) or "429 pauses only"
        return f"shared budget in {self.storage.shown}: {limits}, across every task and trigger"


# -- the wait, written once ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Script:
    """Run one of :data:`SCRIPTS` with the plan's keys and these arguments."""

    name: str
    args: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep this long."""

    seconds: float


@dataclass(frozen=True, slots=True)
class AwaitRelease:
    """Block until a slot is given back, or this many seconds."""

    seconds: float


@dataclass(frozen=True, slots=True)
class RateOp:
    """``hit``: take one entry of the rate window (True when taken); ``reset``: when it frees one."""

    what: str


Op = Script | Sleep | AwaitRelease | RateOp
HIT, RESET = RateOp("hit"), RateOp("reset")
#: The steps that wait: within one process, only one request at a time waits on Redis.
WAITS = (Sleep, AwaitRelease)


def _take_slot(plan: BudgetPlan, lease_id: str) -> Generator[Op, object, None]:
    limit = plan.max_in_flight or 0
    while True:
        got = int(cast("int", (yield Script("acquire", (limit, lease_id, plan.lease_ms)))))
        if got == 1:
            return
        if got < 0:
            yield Sleep(-got / 1000)  # every user of the merchant is paused after a 429
        else:
            yield AwaitRelease(WAKE_WAIT)


def acquire_steps(plan: BudgetPlan, lease_id: str) -> Generator[Op, object, bool]:
    """Take a slot (when capped), then a rate entry (when limited); return whether a slot is held."""
    yield from _take_slot(plan, lease_id)
    if plan.rate is None:
        return plan.max_in_flight is not None
    # Slot first, rate second: the request goes right after its rate entry, so sends keep the rate.
    started = _retry.monotonic()
    while not (yield HIT):
        reset = cast("float", (yield RESET))
        yield Sleep(min(max(reset - time.time(), 0.001), 1.0))
    # A long wait for the rate: renew the lease before it can expire, or take a slot again.
    long_wait = _retry.monotonic() - started > plan.lease_ms / 3000
    if (
        plan.max_in_flight is not None
        and long_wait
        and not (yield Script("renew", (lease_id, plan.lease_ms)))
    ):
        yield from _take_slot(plan, lease_id)
    return plan.max_in_flight is not None


def run(steps: Generator[Op, object, T], perform: Callable[[Op], object]) -> T:
    try:
        op = next(steps)
        while True:
            op = steps.send(perform(op))
    except StopIteration as done:
        return cast("T", done.value)


async def arun(steps: Generator[Op, object, T], perform: Callable[[Op], Awaitable[object]]) -> T:
    try:
        op = next(steps)
        while True:
            op = steps.send(await perform(op))
    except StopIteration as done:
        return cast("T", done.value)
