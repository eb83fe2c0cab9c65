from __future__ import annotations

import asyncio

import pytest
from vexora_hook_support import FakeClock

from vexora_provider.hooks import _retry


class TestBackoffDelay:
    @pytest.mark.parametrize(
        ("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (20, 30.0)]
    )
    def test_full_jitter_ceiling(self, monkeypatch: pytest.MonkeyPatch, attempt: int, ceiling: float) -> None:
        bounds: list[tuple[float, float]] = []

        def uniform(low: float, high: float) -> float:
            bounds.append((low, high))
            return high

        monkeypatch.setattr(_retry, "uniform", uniform)
        assert _retry.backoff_delay(attempt) == ceiling
        assert bounds == [(0.0, ceiling)]


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, None),
            ("", None),
            ("soon", None),
            ("nan", None),
            ("inf", None),
            ("0", None),  # nothing to wait: the normal backoff applies, not an immediate retry
            ("-4", None),
            ("2.5", 2.5),
            ("86400", 86400.0),  # capped by the session's RetryAfterBudget, not here
            ("Wed, 21 Oct 2015 07:28:00 GMT", None),  # in the past: normal backoff
            ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: refuse to guess
        ],
    )
    def test_values(self, value: str | None, expected: float | None) -> None:
        assert _retry.parse_retry_after(value) == expected


class TestRetryAfterBudget:
    def test_each_wait_capped_and_all_bounded(self) -> None:
        budget = _retry.RetryAfterBudget(cap=30, budget=70)
        assert budget.take(5) == 5
        assert budget.take(3600) == 30
        assert budget.take(60) == 30
        assert budget.take(60) == 5  # what is left
        assert budget.take(1) is None
        assert budget.take(60) is None

    def test_zero_cap_never_obeys(self) -> None:
        assert _retry.RetryAfterBudget(cap=0, budget=120).take(5) is None


class TestAsyncRateLimiter:
    @pytest.mark.anyio
    async def test_unlimited_never_waits(self, clock: FakeClock) -> None:
        limiter = _retry.AsyncRateLimiter(None)
        for _ in range(100):
            await limiter.acquire()
        assert clock.sleeps == []

    @pytest.mark.anyio
    async def test_slots_are_spaced(self, clock: FakeClock) -> None:
        limiter = _retry.AsyncRateLimiter(5)
        await asyncio.gather(*(limiter.acquire() for _ in range(4)))
        # Four slots at 5/s: the last one starts 0.6 s after the first (the fake clock is shared,
        # so each sleep moves "now" for everyone).
        assert clock.now == pytest.approx(1000.6)
        assert len(clock.sleeps) == 3

    @pytest.mark.anyio
    async def test_pause_holds_reserved_slots_too(self, clock: FakeClock) -> None:
        limiter = _retry.AsyncRateLimiter(10)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())  # reserves the slot at +0.1 s
        await asyncio.sleep(0)
        await limiter.pause(5)
        await waiter
        assert clock.now >= 1005.0


class TestRateLimiter:
    def test_pause_then_rate(self, clock: FakeClock) -> None:
        limiter = _retry.RateLimiter(2)
        limiter.pause(3)
        limiter.acquire()
        limiter.acquire()
        assert clock.sleeps == [pytest.approx(3.0), pytest.approx(0.5)]
