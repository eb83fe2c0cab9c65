"""The runners give a limiter's slot back once each answer (or failure) is in, on both paths."""

from __future__ import annotations

import asyncio

import pytest

from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import VexoraTransportError
from vexora_provider.hooks._driver import Driver, RetryRule
from vexora_provider.hooks._protocol import Answer, FetchStats, TransportFailure
from vexora_provider.hooks._runners import AsyncRunner, SyncRunner

OK = Answer(200, b'{"code":"0000","msg":"success","data":{"tradeNo":"T1","status":"0015"}}')


def driver() -> Driver:
    config = VexoraConfig.from_connection_fields(
        host="https://api.vexora.example/nigeria", login="3060414594", password="s" * 32, extra=None
    )
    return Driver(config=config, stats=FetchStats(), proxy=None)


class Budget:
    """A limiter handing out numbered slots and recording every event in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.taken = 0

    def acquire(self) -> Slot:
        self.taken += 1
        self.events.append(f"take {self.taken}")
        return Slot(self, self.taken)

    def pause(self, seconds: float) -> None:
        self.events.append(f"pause {seconds:g}")


class Slot:
    def __init__(self, budget: Budget, number: int) -> None:
        self.budget, self.number = budget, number

    def release(self) -> None:
        self.budget.events.append(f"give {self.number}")


class AsyncBudget(Budget):
    async def acquire(self) -> AsyncSlot:  # type: ignore[override]
        self.taken += 1
        self.events.append(f"take {self.taken}")
        return AsyncSlot(self, self.taken)

    async def pause(self, seconds: float) -> None:  # type: ignore[override]
        self.events.append(f"pause {seconds:g}")


class AsyncSlot(Slot):
    async def release(self) -> None:  # type: ignore[override]
        self.budget.events.append(f"give {self.number}")


class TestSyncRunner:
    def test_each_slot_is_given_back_before_the_next_try(self) -> None:
        budget = Budget()
        answers = [TransportFailure("reset", "peer reset"), Answer(429, b"", "2"), OK]

        def send(endpoint: str, body: bytes) -> Answer:
            budget.events.append("send")
            answer = answers.pop(0)
            if isinstance(answer, TransportFailure):
                raise answer
            return answer

        runner = SyncRunner(driver(), send, budget)
        runner.run(runner.driver.status_call("T1"))
        assert budget.events == [
            *("take 1", "send", "give 1"),
            *("take 2", "send", "give 2", "pause 2"),
            *("take 3", "send", "give 3"),
        ]

    def test_a_slot_comes_back_when_the_send_breaks_unexpectedly(self) -> None:
        budget = Budget()

        def send(endpoint: str, body: bytes) -> Answer:
            raise RuntimeError("a bug in a sender")

        runner = SyncRunner(driver(), send, budget)
        with pytest.raises(RuntimeError):
            runner.run(runner.driver.status_call("T1"))
        assert budget.events == ["take 1", "give 1"]


class TestAsyncRunner:
    def test_each_slot_is_given_back_even_on_failure(self) -> None:
        budget = AsyncBudget()

        async def send(endpoint: str, body: bytes) -> Answer:
            budget.events.append("send")
            raise TransportFailure("refused", "connection refused")

        runner = AsyncRunner(driver(), send, budget)
        call = runner.driver.status_call("T1")
        call.rule = RetryRule(max_attempts=2)
        with pytest.raises(VexoraTransportError):
            asyncio.run(runner.run(call))
        assert budget.events == ["take 1", "send", "give 1", "take 2", "send", "give 2"]

    def test_a_cancelled_request_gives_its_slot_back(self) -> None:
        budget = AsyncBudget()

        async def send(endpoint: str, body: bytes) -> Answer:
            await asyncio.sleep(10)
            return OK

        async def main() -> None:
            runner = AsyncRunner(driver(), send, budget)
            task = asyncio.create_task(runner.run(runner.driver.status_call("T1")))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert budget.events == ["take 1", "give 1"]
