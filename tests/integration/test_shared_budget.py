"""The shared gateway budget on a real Redis, seen from the simulator: across processes, clients, paths.

Each test serves its own simulator, so its budget keys (merchant and base URL) are its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from tests.integration.airflow_support import free_port
from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import Permanence, VexoraBudgetError
from vexora_provider.hooks import _retry
from vexora_provider.hooks._budget import HIT, RESET, AwaitRelease, BudgetPlan, Op, Script, Sleep
from vexora_provider.hooks._budget_redis import AsyncStore, SyncStore, async_budget, sync_budget
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutStatus
from vexora_provider.sensors.payout_status import PayoutStatusSensor
from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.server import SimulatorServer
from vexora_provider.triggers.payout_status import PayoutStatusTrigger

pytestmark = pytest.mark.integration

# One process of the cross-process test: an async stream, or sync calls from four threads.
WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from concurrent.futures import ThreadPoolExecutor
    from vexora_provider.hooks.vexora import VexoraHook
    from vexora_provider.models import PayoutStatus

    mode, trades = sys.argv[1], sys.argv[2].split(",")
    hook = VexoraHook()
    if mode == "async":
        async def main():
            async with hook.async_session(concurrency=16) as session:
                return [r async for r in session.stream_payout_statuses(trades)]
        results = asyncio.run(main())
    else:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(hook.get_payout_status, trades))
    print(sum(isinstance(r, PayoutStatus) for r in results))
    """
)


@pytest.fixture
def served(vexora_simulator: VexoraSimulator) -> Iterator[SimulatorServer]:
    with vexora_simulator.serve() as server:
        yield server


def connect(monkeypatch: pytest.MonkeyPatch, server: SimulatorServer, **extra: Any) -> str:
    value = server.airflow_connection("indonesia", **extra)
    monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", value)
    return value


def plan_of(server: SimulatorServer, redis_url: str, **extra: Any) -> BudgetPlan:
    conn = json.loads(server.airflow_connection("indonesia", budget_storage=redis_url, **extra))
    config = VexoraConfig.from_connection_fields(
        host=conn["host"], login=conn["login"], password=conn["password"], extra=conn["extra"]
    )
    plan = BudgetPlan.of(config)
    assert plan is not None
    return plan


class TestAcrossProcesses:
    def test_one_cap_for_every_process_and_path(
        self, served: SimulatorServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sim = served.sim
        sim.add_fault("latency", latency_ms=40)
        trades = sim.create_payouts(150)
        env = {
            **os.environ,
            "AIRFLOW_CONN_VEXORA_DEFAULT": connect(
                monkeypatch, served, budget_storage=redis_url, max_in_flight=4
            ),
        }
        parts = [("async", trades[:60]), ("async", trades[60:120]), ("sync", trades[120:])]
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, mode, ",".join(part)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for mode, part in parts
        ]
        outputs = [worker.communicate(timeout=180) for worker in workers]
        assert [w.returncode for w in workers] == [0, 0, 0], [err[-2000:] for _, err in outputs]
        assert [int(out.strip().splitlines()[-1]) for out, _ in outputs] == [60, 60, 30]
        stats = sim.stats()
        # Each process alone would put 16 (or 4) in flight; together they stay within 4.
        assert stats["total"] == 150
        assert 1 < stats["in_flight_peak"] <= 4


@dataclasses.dataclass
class Performed:
    """One storage operation a budget store carried out: which store (client), what, its result."""

    store: int
    op: Op
    result: object


@pytest.fixture
def performed(monkeypatch: pytest.MonkeyPatch) -> list[Performed]:
    """Every operation the sync and async budget stores perform, in the order they complete."""
    log: list[Performed] = []
    lock = threading.Lock()
    sync_perform, async_perform = SyncStore.perform, AsyncStore.perform

    def record(store: object, op: Op, result: object) -> object:
        with lock:
            log.append(Performed(id(store), op, result))
        return result

    def perform(store: SyncStore, plan: BudgetPlan, op: Op) -> object:
        return record(store, op, sync_perform(store, plan, op))

    async def aperform(store: AsyncStore, plan: BudgetPlan, op: Op) -> object:
        return record(store, op, await async_perform(store, plan, op))

    monkeypatch.setattr(SyncStore, "perform", perform)
    monkeypatch.setattr(AsyncStore, "perform", aperform)
    return log


def scripts(log: list[Performed], name: str) -> list[Performed]:
    return [p for p in log if isinstance(p.op, Script) and p.op.name == name]


class TestSharedRate:
    def test_clients_share_one_window(
        self, served: SimulatorServer, redis_url: str, performed: list[Performed]
    ) -> None:
        plan = plan_of(served, redis_url, requests_per_second=10)
        assert plan.rate == (10, 1)
        granted: list[object] = []  # list.append is atomic: no lock needed

        async def take_async(n: int) -> None:
            async with async_budget(plan) as budget:
                for _ in range(n):
                    granted.append(await budget.acquire())

        def take_sync(n: int) -> None:
            budget = sync_budget(plan)
            for _ in range(n):
                granted.append(budget.acquire())

        # Two event loops (two Redis clients) and the sync client: three users of one budget.
        threads = [
            threading.Thread(target=asyncio.run, args=(take_async(12),)),
            threading.Thread(target=asyncio.run, args=(take_async(12),)),
            threading.Thread(target=take_sync, args=(12,)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads), "a client never got its 12 grants"
        assert len(granted) == 36
        hits = [p for p in performed if p.op is HIT]
        assert len({p.store for p in hits}) == 3  # three clients, each with its own Redis client
        assert [p.result for p in hits].count(True) == 36  # each grant took one entry of the window
        # The window has room for 10: after at most 10 grants, across all three clients, the next
        # is refused. Were the window each client's own, none would be refused before its 11th.
        refused = [i for i, p in enumerate(hits) if p.result is False]
        assert refused, "the window never refused a request: nothing limits the rate"
        assert [p.result for p in hits[: refused[0]]].count(True) <= 10
        own_grants_when_refused = [
            sum(1 for h in hits[:i] if h.store == hits[i].store and h.result is True) for i in refused
        ]
        assert min(own_grants_when_refused) < 10, "no client was refused for another client's grants"
        # A refused client asks the window when it frees an entry and sleeps until then (≤ 1 s).
        for i, p in enumerate(performed):
            if p.op is HIT and p.result is False:
                after = next(q for q in performed[i + 1 :] if q.store == p.store)
                assert after.op is RESET
        sleeps = [p.op.seconds for p in performed if isinstance(p.op, Sleep)]
        assert sleeps, "no client waited for the window"
        assert all(0 < seconds <= 1.0 for seconds in sleeps)


class TestLeases:
    def test_a_killed_holder_frees_its_slots_when_the_leases_expire(
        self, served: SimulatorServer, redis_url: str, performed: list[Performed]
    ) -> None:
        plan = dataclasses.replace(plan_of(served, redis_url, max_in_flight=2), lease_ms=1500)
        storage = redis.Redis.from_url(redis_url, decode_responses=True)
        leases = plan.keys[0]
        budget = sync_budget(plan)
        held = [budget.acquire(), budget.acquire()]  # never given back, as by a killed task
        assert all(held)
        dead = {lease._lease_id for lease in held if lease is not None}
        assert set(storage.zrange(leases, 0, -1)) == dead  # both slots taken
        performed.clear()
        lease = budget.acquire()
        assert lease is not None
        # Refused while the dead holder's leases lived, woken by no give-back, then given a slot.
        tries = [p.result for p in scripts(performed, "acquire")]
        assert tries[-1] == 1
        assert len(tries) >= 2, tries
        assert set(tries[:-1]) == {0}, tries
        waits = [p for p in performed if isinstance(p.op, AwaitRelease)]
        assert waits
        assert all(p.result is None for p in waits)  # nobody gave a slot back
        assert not scripts(performed, "release")
        # The expired leases are gone from Redis; the new one holds the only slot taken.
        assert all(storage.zscore(leases, lease_id) is None for lease_id in dead)
        assert storage.zrange(leases, 0, -1) == [lease._lease_id]
        lease.release()
        assert storage.zcard(leases) == 0

    def test_a_slot_given_back_wakes_a_waiter(self, served: SimulatorServer, redis_url: str) -> None:
        plan = plan_of(served, redis_url, max_in_flight=1)

        async def main() -> list[str]:
            order: list[str] = []
            async with async_budget(plan) as budget:
                first = await budget.acquire()
                assert first is not None

                async def second() -> None:
                    lease = await budget.acquire()
                    order.append("second")
                    assert lease is not None
                    await lease.release()

                task = asyncio.create_task(second())
                await asyncio.sleep(0.3)
                order.append("release")
                await first.release()
                await asyncio.wait_for(task, 5)
            return order

        assert asyncio.run(main()) == ["release", "second"]

    def test_a_429_pauses_every_client(
        self,
        served: SimulatorServer,
        redis_url: str,
        performed: list[Performed],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        plan = plan_of(served, redis_url, max_in_flight=4)
        storage = redis.Redis.from_url(redis_url)
        sync_budget(plan).pause(60)  # long enough that the other client surely finds it
        assert 0 < storage.pttl(plan.keys[1]) <= 60_000
        slept: list[float] = []

        async def the_pause_runs_out(seconds: float) -> None:  # a virtual clock: no real wait
            slept.append(seconds)
            storage.delete(plan.keys[1])

        monkeypatch.setattr(_retry, "asleep", the_pause_runs_out)

        async def main() -> None:
            async with async_budget(plan) as budget:
                lease = await budget.acquire()
                assert lease is not None
                await lease.release()

        asyncio.run(main())
        (paused,) = scripts(performed, "pause")
        tries = [p for p in scripts(performed, "acquire") if p.store != paused.store]
        assert tries, "the other client never asked for a slot"
        # The other client was told the merchant is paused, slept what was left of the pause, and
        # got its slot only after that.
        results = [p.result for p in tries]
        assert results[-1] == 1
        assert len(results) >= 2, results
        assert all(int(cast("int", r)) < 0 for r in results[:-1]), results
        (seconds,) = slept
        assert 0 < seconds <= 60
        (sleep,) = [p for p in performed if isinstance(p.op, Sleep)]
        assert isinstance(sleep.op, Sleep)
        assert sleep.op.seconds == seconds == -int(cast("int", results[-2])) / 1000
        assert performed.index(tries[-2]) < performed.index(sleep) < performed.index(tries[-1])


class TestConnectionTest:
    def test_reports_the_budget(
        self, served: SimulatorServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(monkeypatch, served, budget_storage=redis_url, max_in_flight=4)
        ok, message = VexoraHook().test_connection()
        assert ok, message
        assert "at most 4 in flight, across every task and trigger (storage answers)" in message

    def test_fails_without_its_storage(
        self, served: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(monkeypatch, served, budget_storage=f"redis://:hunter2@127.0.0.1:{free_port()}/0")
        ok, message = VexoraHook().test_connection()
        assert not ok
        assert message.startswith("VexoraBudgetError: ")
        assert "budget_storage" in message
        leaked = "hunter2" in message  # never ``assert password not in``: it prints the password
        assert not leaked, "the storage password is in the check's message"
        assert served.sim.stats()["total"] == 0


class TestStorageUnreachable:
    @pytest.fixture
    def dead_storage(self, served: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> str:
        url = f"redis://:hunter2-storage@127.0.0.1:{free_port()}/0"
        connect(monkeypatch, served, budget_storage=url, max_in_flight=4, max_attempts=1)
        return url

    @staticmethod
    def check(error: VexoraBudgetError, served: SimulatorServer) -> None:
        message = str(error)
        assert "budget_storage" in message
        assert "127.0.0.1" in message
        leaked = "hunter2" in message  # never ``assert password not in``: it prints the password
        assert not leaked, "the storage password is in the error"
        assert error.permanence is Permanence.CONNECTION
        assert error.task_retryable  # an outage: the task's next try may find the storage back
        assert served.sim.stats()["total"] == 0  # never unlimited: nothing was sent

    def test_sync_hook_fails_naming_the_storage(self, served: SimulatorServer, dead_storage: str) -> None:
        served.sim.add_payout("T1", "success")
        with pytest.raises(VexoraBudgetError) as raised:
            VexoraHook().get_payout_status("T1")
        self.check(raised.value, served)

    def test_bulk_stream_stops_at_once(self, served: SimulatorServer, dead_storage: str) -> None:
        trades = served.sim.create_payouts(50)

        async def main() -> list[Any]:
            return [r async for r in VexoraHook().astream_payout_statuses(trades, concurrency=8)]

        with pytest.raises(VexoraBudgetError) as raised:
            asyncio.run(main())
        self.check(raised.value, served)

    def test_trigger_ends_with_an_error_event(self, served: SimulatorServer, dead_storage: str) -> None:
        served.sim.add_payout("T1", "success")
        trigger = PayoutStatusTrigger(
            trade_nos=["T1"], vexora_conn_id="vexora_default", end_time=time.time() + 60, poll_interval=0
        )

        async def main() -> Any:
            return await trigger.run().__anext__()

        event = asyncio.run(main()).payload
        assert event["status"] == "error"
        assert event["retryable"] is True  # the sensor fails the try, and Airflow retries it
        assert "budget_storage" in event["message"]
        leaked = "hunter2" in event["message"]  # never ``assert password not in``: it prints it
        assert not leaked, "the storage password is in the trigger's error event"

    def test_poke_mode_sensor_fails_the_try_and_keeps_its_retries(
        self, served: SimulatorServer, dead_storage: str
    ) -> None:
        served.sim.add_payout("T1", "success")
        sensor = PayoutStatusSensor(task_id="wait", trade_nos="T1", poke_interval=0, deferrable=False)
        with pytest.raises(AirflowException, match="budget_storage") as raised:
            sensor.execute({})  # type: ignore[arg-type]
        assert not isinstance(raised.value, AirflowFailException)
        assert served.sim.stats()["total"] == 0

    def test_a_wrong_password_is_named_not_shown(
        self, served: SimulatorServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The test Redis has no password: AUTH with one is refused.
        url = redis_url.replace("redis://", "redis://:not-the-password@", 1)
        connect(monkeypatch, served, budget_storage=url, max_in_flight=4)
        served.sim.add_payout("T1", "success")
        with pytest.raises(VexoraBudgetError) as raised:
            VexoraHook().get_payout_status("T1")
        leaked = "not-the-password" in str(raised.value)  # never ``assert password not in``
        assert not leaked, "the refused password is in the error"
        assert "budget_storage" in str(raised.value)
        assert not raised.value.task_retryable  # a person must fix the password
        assert served.sim.stats()["total"] == 0


def test_every_result_is_a_payout_status_with_the_budget(
    served: SimulatorServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = served.sim.create_payouts(40, {"success": 0.5, "failed": 0.5})
    connect(monkeypatch, served, budget_storage=redis_url, max_in_flight=3, requests_per_second=500)

    async def main() -> list[Any]:
        return [r async for r in VexoraHook().astream_payout_statuses(trades, concurrency=8)]

    results = asyncio.run(main())
    assert sorted(r.trade_no for r in results if isinstance(r, PayoutStatus)) == trades
