"""Backoff, ``Retry-After`` and the session-wide rate limiters used by the attempt driver.

Clock and sleep functions are module attributes looked up at call time, so tests patch
``_retry.monotonic`` / ``_retry.sleep`` / ``_retry.asleep`` and run without waiting.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Protocol

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "AsyncLease",
    "AsyncLimiter",
    "AsyncRateLimiter",
    "Lease",
    "Limiter",
    "RateLimiter",
    "RetryAfterBudget",
    "backoff_delay",
    "parse_retry_after",
]

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0

monotonic = time.monotonic
sleep = time.sleep
asleep = asyncio.sleep
uniform = random.uniform


def backoff_delay(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Return the full-jitter delay before try ``attempt + 1`` (``attempt`` counts from 1)."""
    return uniform(0.0, min(cap, base * (2 ** (attempt - 1))))


def parse_retry_after(value: str | None) -> float | None:
    """
    Return the seconds a ``Retry-After`` header asks for (delta-seconds or HTTP-date).

    ``None`` when there is nothing usable to obey: no header, a malformed one, or zero, negative
    or past times -- the caller then falls back to its normal jittered backoff rather than
    retrying at once.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if not (seconds > 0 and seconds != float("inf")):  # also refuses NaN
        return None
    return seconds


class RetryAfterBudget:
    """
    How much server-asked waiting one session obeys: each wait capped, all of them bounded.

    A gateway asking for minutes again and again would otherwise hold a bulk session for as long as
    it likes; past the budget, retries fall back to the normal jittered backoff.

    :param cap: the longest single wait obeyed, in seconds (longer asks are cut to it).
    :param budget: the total of obeyed waits, in seconds.
    """

    def __init__(self, *, cap: float, budget: float) -> None:
        self.cap = cap
        self.left = budget

    def take(self, asked: float) -> float | None:
        """Return how long to wait for a ``Retry-After`` of ``asked`` seconds, ``None`` when spent."""
        wait = min(asked, self.cap, self.left)
        if wait <= 0:
            return None
        self.left -= wait
        return wait


class Lease(Protocol):
    """A slot a limiter handed out for one request, given back once its answer (or failure) is in."""

    def release(self) -> None:
        """Give the slot back; never raises (a slot that cannot be given back expires)."""


class AsyncLease(Protocol):
    """Async twin of :class:`Lease`."""

    async def release(self) -> None:
        """Give the slot back; never raises (a slot that cannot be given back expires)."""


class Limiter(Protocol):
    """What the sync attempt runner needs from a rate limiter (ours or a shared one)."""

    def acquire(self) -> Lease | None:
        """Block until the next request may go; return the slot to give back after it, if any."""

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (the gateway asked us to slow down)."""


class AsyncLimiter(Protocol):
    """What the async attempt runner needs from a rate limiter (ours or a shared one)."""

    async def acquire(self) -> AsyncLease | None:
        """Wait until the next request may go; return the slot to give back after it, if any."""

    async def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (the gateway asked us to slow down)."""


class _Schedule:
    """
    GCRA-style slot reservation shared by the sync and async limiters.

    Each caller reserves the next free slot and sleeps until it, so C workers never stampede and
    no lock is held while sleeping. A pause (after a 429) pushes every later slot past its end.

    :param rate: requests per second, ``None`` for no rate limit (pauses still apply).
    """

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = 0.0
        self.paused_until = 0.0

    def reserve(self, now: float) -> float:
        """Return how long the caller must wait from ``now``."""
        start = now if now > self.paused_until else self.paused_until
        if not self.interval:
            return start - now
        slot = self.next_slot if self.next_slot > start else start
        self.next_slot = slot + self.interval
        return slot - now

    def pause(self, now: float, seconds: float) -> None:
        until = now + seconds
        if until > self.paused_until:
            self.paused_until = until


class AsyncRateLimiter:
    """
    Token-bucket rate limit (burst 1) for one async session, shared by all its workers.

    :param rate: requests per second, ``None`` for unlimited.
    """

    def __init__(self, rate: float | None) -> None:
        self._schedule = _Schedule(rate)

    async def acquire(self) -> None:
        """Wait for this request's slot (and for any pause to end)."""
        schedule = self._schedule
        # Unlimited and never paused: skip the clock, this runs ~1,000 times a second.
        if not schedule.interval and not schedule.paused_until:
            return
        wait = schedule.reserve(monotonic())
        while wait > 0:
            await asleep(wait)
            # A 429 seen while we slept pauses us too, even though our slot was reserved before.
            wait = schedule.paused_until - monotonic()

    async def pause(self, seconds: float) -> None:
        """Hold every request of the session for ``seconds`` (a 429's ``Retry-After``)."""
        self._schedule.pause(monotonic(), seconds)


class RateLimiter:
    """
    Thread-safe twin of :class:`AsyncRateLimiter` for the sync hook.

    :param rate: requests per second, ``None`` for unlimited.
    """

    def __init__(self, rate: float | None) -> None:
        self._schedule = _Schedule(rate)
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until this request's slot (and any pause) has come."""
        with self._lock:
            wait = self._schedule.reserve(monotonic())
        while wait > 0:
            sleep(wait)
            wait = self._schedule.paused_until - monotonic()

    def pause(self, seconds: float) -> None:
        """Hold every request of this hook for ``seconds``."""
        with self._lock:
            self._schedule.pause(monotonic(), seconds)
