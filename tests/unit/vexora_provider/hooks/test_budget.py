"""The shared budget's plan and wait, driven by hand: no Redis, no clock -- only the steps."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from vexora_provider.config import VexoraConfig
from vexora_provider.hooks import _retry
from vexora_provider.hooks._budget import (
    HIT,
    RESET,
    WAKE_WAIT,
    AwaitRelease,
    BudgetPlan,
    Script,
    Sleep,
    acquire_steps,
    rate_window,
)


def config(**extra: object) -> VexoraConfig:
    return VexoraConfig.from_connection_fields(
        host="https://api.vexora.example/nigeria", login="3060414594", password="s" * 32, extra=extra
    )


def plan(**extra: object) -> BudgetPlan:
    found = BudgetPlan.of(config(budget_storage="redis://:pw@redis.internal:6379/4", **extra))
    assert found is not None
    return found


def finish(steps: Generator[Any, object, bool], result: object) -> bool:
    with pytest.raises(StopIteration) as done:
        steps.send(result)
    return bool(done.value.value)


class TestRateWindow:
    @pytest.mark.parametrize(
        ("rate", "window"),
        [(20, (20, 1)), (2.5, (2, 1)), (1, (1, 1)), (0.5, (1, 2)), (0.3, (1, 4)), (0.01, (1, 100))],
    )
    def test_never_above_the_rate(self, rate: float, window: tuple[int, int]) -> None:
        assert rate_window(rate) == window
        assert window[0] / window[1] <= rate


class TestBudgetPlan:
    def test_none_without_storage(self) -> None:
        assert BudgetPlan.of(config(max_attempts=2)) is None

    def test_what_is_shared(self) -> None:
        shared = plan(max_in_flight=8, requests_per_second=20, connect_timeout=2, read_timeout=4)
        assert (shared.max_in_flight, shared.rate, shared.lease_ms) == (8, (20, 1), 15_000)
        # One budget per merchant and gateway, whichever connection id names them.
        assert shared.key == "{vexora-budget:3060414594@https://api.vexora.example/nigeria}"
        assert shared.keys == [f"{shared.key}:leases", f"{shared.key}:pause", f"{shared.key}:wake"]

    @pytest.mark.parametrize(
        ("extra", "phrase"),
        [
            ({"max_in_flight": 8}, "at most 8 in flight"),
            ({"requests_per_second": 0.5}, "1 per 2 s"),
            ({"max_in_flight": 4, "requests_per_second": 20}, "at most 4 in flight and 20 per second"),
            ({}, "429 pauses only"),
        ],
    )
    def test_describe_never_shows_the_password(self, extra: dict[str, object], phrase: str) -> None:
        text = plan(**extra).describe()
        assert text.startswith("shared budget in redis://redis.internal:6379/4: ")
        assert phrase in text
        leaked = "pw" in text  # never ``assert password not in text``: a failure would print it
        assert not leaked, "the storage password is in the description"


class TestAcquireSteps:
    def test_a_free_slot_at_once(self) -> None:
        steps = acquire_steps(plan(max_in_flight=8), "L1")
        assert next(steps) == Script("acquire", (8, "L1", 30_000))
        assert finish(steps, 1) is True

    def test_no_cap_only_checks_the_pause(self) -> None:
        steps = acquire_steps(plan(), "L1")
        assert next(steps) == Script("acquire", (0, "L1", 30_000))
        assert finish(steps, 1) is False  # no slot to give back

    def test_waits_for_a_slot_given_back(self) -> None:
        steps = acquire_steps(plan(max_in_flight=2), "L1")
        next(steps)
        assert steps.send(0) == AwaitRelease(WAKE_WAIT)
        assert steps.send(None) == Script("acquire", (2, "L1", 30_000))
        assert finish(steps, 1) is True

    def test_a_shared_pause_is_waited_out(self) -> None:
        steps = acquire_steps(plan(max_in_flight=2), "L1")
        next(steps)
        assert steps.send(-1500) == Sleep(1.5)
        assert isinstance(steps.send(None), Script)
        assert finish(steps, 1) is True

    def test_slot_first_then_the_rate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_retry, "monotonic", lambda: 0.0)
        monkeypatch.setattr("vexora_provider.hooks._budget.time.time", lambda: 100.0)
        steps = acquire_steps(plan(max_in_flight=2, requests_per_second=5), "L1")
        assert next(steps).name == "acquire"  # type: ignore[union-attr]
        assert steps.send(1) == HIT
        assert steps.send(False) == RESET
        assert steps.send(100.25) == Sleep(0.25)
        assert steps.send(None) == HIT
        assert finish(steps, True) is True

    def test_a_long_rate_wait_renews_the_lease(self, monkeypatch: pytest.MonkeyPatch) -> None:
        now = [0.0]
        monkeypatch.setattr(_retry, "monotonic", lambda: now[0])
        steps = acquire_steps(plan(max_in_flight=2, requests_per_second=1), "L1")
        next(steps)
        assert steps.send(1) == HIT
        now[0] = 60.0  # past a third of the 30 s lease
        assert steps.send(True) == Script("renew", ("L1", 30_000))
        assert finish(steps, 1) is True

    def test_an_expired_lease_takes_a_slot_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        now = [0.0]
        monkeypatch.setattr(_retry, "monotonic", lambda: now[0])
        steps = acquire_steps(plan(max_in_flight=2, requests_per_second=1), "L1")
        next(steps)
        steps.send(1)
        now[0] = 60.0
        steps.send(True)
        assert steps.send(0) == Script("acquire", (2, "L1", 30_000))
        assert finish(steps, 1) is True
