"""The budget's Redis side without Redis: what a worker without the ``budget`` extra is told."""

from __future__ import annotations

import asyncio
import sys

import pytest

from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import Permanence, VexoraBudgetError
from vexora_provider.hooks._budget import BudgetPlan
from vexora_provider.hooks._budget_redis import BUDGET_EXTRA, async_budget, storage_errors, sync_budget


def plan(port: int) -> BudgetPlan:
    config = VexoraConfig.from_connection_fields(
        host="https://api.vexora.example/nigeria",
        login="3060414594",
        password="s" * 32,
        extra={"budget_storage": f"redis://:pw@127.0.0.1:{port}/0", "max_in_flight": 2},
    )
    found = BudgetPlan.of(config)
    assert found is not None
    return found


class TestWithoutTheBudgetExtra:
    @pytest.fixture(autouse=True)
    def uninstalled(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("redis", "redis.asyncio", "limits", "limits.storage"):
            monkeypatch.setitem(sys.modules, name, None)  # `import name` fails as if not installed

    def check(self, error: VexoraBudgetError) -> None:
        assert "budget_storage" in str(error)
        assert f"pip install '{BUDGET_EXTRA}'" in str(error)
        assert error.permanence is Permanence.CONNECTION
        assert not error.task_retryable  # no retry installs a package

    def test_sync(self) -> None:
        with pytest.raises(VexoraBudgetError) as raised:
            sync_budget(plan(1)).acquire()
        self.check(raised.value)

    def test_async(self) -> None:
        async def main() -> None:
            async with async_budget(plan(2)) as budget:
                await budget.acquire()

        with pytest.raises(VexoraBudgetError) as raised:
            asyncio.run(main())
        self.check(raised.value)


class TestStorageErrors:
    @pytest.mark.parametrize(
        ("error", "outage"),
        [
            ("ConnectionError", True),
            ("TimeoutError", True),
            ("BusyLoadingError", True),  # Redis restarting
            ("ReadOnlyError", True),  # a replica during failover
            ("TryAgainError", True),
            ("MasterDownError", True),
            ("AuthenticationError", False),  # a refused password
            ("ResponseError", False),  # a refused command
        ],
    )
    def test_an_outage_keeps_the_task_retries_a_refusal_does_not(self, error: str, outage: bool) -> None:
        import redis.exceptions

        with pytest.raises(VexoraBudgetError) as caught, storage_errors(plan(6379), "taking a slot"):
            raise getattr(redis.exceptions, error)("boom")
        assert (caught.value.outage, caught.value.task_retryable) == (outage, outage)
        assert caught.value.permanence is Permanence.CONNECTION  # the call stops at once either way
