"""PayoutSettledTrigger against the simulator and a SQLite status table: transitions only, once.

Time is scripted: the trigger's ``sleep`` and clock are replaced, and a run ends at a horizon by
raising out of ``sleep``. A new trigger on the same state store is a restarted triggerer.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import AssetWatcher
from airflow.sdk.serde import deserialize, serialize

from vexora_provider.assets import POLL_MEMORY_KEY, SETTLEMENT_FIELDS, payouts_asset
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.testing import VexoraSimulator
from vexora_provider.triggers import settlement
from vexora_provider.triggers.settlement import PERSIST_DELAY, PayoutSettledTrigger, PollMemory
from vexora_provider.warehouse import SqliteWriter, TableName

CLASSPATH = "vexora_provider.triggers.settlement.PayoutSettledTrigger"
SECRET = "watcher-secret-51c0de9a7f"
INTERVAL = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Horizon(BaseException):
    """Ends a scripted run (not an Exception: the trigger must not swallow it)."""


class Clock:
    """Monotonic time that only moves when the trigger sleeps; the run ends at ``horizon``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.horizon = float("inf")

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.now + seconds >= self.horizon:
            raise Horizon
        self.now += seconds


class MemoryStore:
    """The asset state store accessor: JSON values by key, round-tripped like the real one."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.writes += 1
        self.values[key] = json.dumps(value)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(settlement, "time", clock)
    monkeypatch.setattr(settlement, "sleep", clock.sleep)
    return clock


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Any:
    with VexoraSimulator(seed=3, secret=SECRET) as simulator:
        monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", simulator.airflow_connection(max_attempts=1))
        transport = simulator.async_transport(sleep=False)
        monkeypatch.setattr(settlement, "VexoraHook", partial(VexoraHook, async_transport=transport))
        yield simulator


class Table:
    """The warehouse status table, as the sync operator creates it, in a SQLite file."""

    def __init__(self, path: Path, merchant_no: str) -> None:
        self.path = path
        self.merchant_no = merchant_no

    def create(self) -> None:
        import airflow.providers.sqlite.hooks.sqlite as sqlite_hooks

        writer = SqliteWriter(
            sqlite_hooks.SqliteHook(sqlite_conn_id="wh"), TableName.parse("vexora_payout_status")
        )
        writer.create_tables()
        writer.close()

    def put(self, trade_no: str, state: str, merchant_no: str | None = None) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "INSERT INTO vexora_payout_status (merchant_no, trade_no, state, fetched_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (merchant_no, trade_no)"
                " DO UPDATE SET state = excluded.state",
                (merchant_no or self.merchant_no, trade_no, state, datetime.now(UTC).isoformat()),
            )


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: VexoraSimulator) -> Table:
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WH", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    table = Table(path, sim.merchant_no)
    table.create()
    return table


def make(store: MemoryStore | None = None, **overrides: Any) -> PayoutSettledTrigger:
    trigger = PayoutSettledTrigger(**{"sql_conn_id": "wh", "poll_interval": INTERVAL, **overrides})
    trigger.asset_state_store = store  # type: ignore[assignment]
    return trigger


async def run_until(trigger: PayoutSettledTrigger, clock: Clock, horizon: float) -> list[dict[str, Any]]:
    """Run the trigger until ``horizon`` seconds of scripted time have passed; return the payloads."""
    clock.horizon = clock.now + horizon
    events: list[dict[str, Any]] = []

    async def collect() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    with pytest.raises(Horizon):
        await collect()
    return events


def announced(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["trade_no"], e["state"]) for e in events]


class TestPayoutSettledTrigger:
    def test_serialize_round_trips(self) -> None:
        trigger = PayoutSettledTrigger(
            vexora_conn_id="vx", sql_conn_id="wh", table="fin.payouts", poll_interval=30, concurrency=4
        )
        classpath, kwargs = trigger.serialize()
        assert classpath == CLASSPATH
        assert kwargs == {
            "vexora_conn_id": "vx",
            "sql_conn_id": "wh",
            "table": "fin.payouts",
            "poll_interval": 30.0,
            "concurrency": 4,
            "max_remembered": 1000,
        }
        assert deserialize(serialize(kwargs)) == kwargs
        assert PayoutSettledTrigger(**kwargs).serialize() == (classpath, kwargs)
        assert PayoutSettledTrigger(sql_conn_id="wh").serialize()[1]["table"] == "vexora_payout_status"

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"table": "x; drop table y"}, "not a plain"),
            ({"poll_interval": 0}, "poll_interval must be positive"),
            ({"concurrency": 0}, "at least 1"),
            ({"max_remembered": 0}, "at least 1"),
        ],
    )
    def test_rejects_bad_kwargs(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            PayoutSettledTrigger(sql_conn_id="wh", **overrides)

    def test_is_an_asset_watcher_trigger(self) -> None:
        watcher = AssetWatcher(name="settled", trigger=PayoutSettledTrigger(sql_conn_id="wh"))
        assert payouts_asset("m1", watchers=[watcher]).watchers == [watcher]

    @pytest.mark.anyio
    async def test_announces_each_settlement_once(
        self, sim: VexoraSimulator, table: Table, clock: Clock
    ) -> None:
        sim.add_payout("T1", "success", pending_polls=1, amount="120.50")
        sim.add_payout("T2", "pending")
        sim.add_payout("T3", "failed", message="REJECTED_TRANSACTION")
        sim.add_payout("T4", "unknown")
        sim.add_payout("T5", "success")
        for trade_no in ("T1", "T2", "T3", "T4"):
            table.put(trade_no, "pending")
        table.put("T5", "success")  # final in the table: never polled
        table.put("T9", "pending", merchant_no="another")  # another merchant's row
        events = await run_until(make(MemoryStore()), clock, 3.5 * INTERVAL)
        assert sorted(announced(events)) == [("T1", "success"), ("T3", "failed"), ("T4", "unknown")]
        t1 = next(e for e in events if e["trade_no"] == "T1")
        assert t1["amount"] == "120.50"
        assert t1["success_time"].endswith("+01:00")  # nigeria's offset
        assert t1["source"] == "poll"
        assert tuple(t1) == SETTLEMENT_FIELDS
        assert sim.calls("T3") == 1  # final: not asked again
        assert sim.calls("T4") == 4  # unknown may still change: asked every poll
        assert sim.calls("T5") == 0
        assert sim.calls("T9") == 0

    @pytest.mark.anyio
    async def test_unknown_then_final_is_two_announcements(
        self, sim: VexoraSimulator, table: Table, clock: Clock
    ) -> None:
        payout = sim.add_payout("T1", "unknown")
        table.put("T1", "unknown")
        store = MemoryStore()
        events = await run_until(make(store), clock, 1.5 * INTERVAL)
        payout.status = payout.final_code = "0000"
        events += await run_until(make(store), clock, 1.5 * INTERVAL)
        assert [(e["state"], e["status_code"]) for e in events] == [("unknown", "0099"), ("success", "0000")]

    @pytest.mark.anyio
    async def test_restart_does_not_announce_again(
        self, sim: VexoraSimulator, table: Table, clock: Clock
    ) -> None:
        sim.add_payout("T1", "success")
        table.put("T1", "pending")
        store = MemoryStore()
        assert announced(await run_until(make(store), clock, PERSIST_DELAY + 1)) == [("T1", "success")]
        assert json.loads(store.values[POLL_MEMORY_KEY]) == {"trades": {"T1": "success"}}
        assert await run_until(make(store), clock, 3 * INTERVAL) == []
        assert sim.calls("T1") == 1  # remembered as final: the restarted watcher does not ask again

    @pytest.mark.anyio
    async def test_crash_before_the_save_announces_again(
        self, sim: VexoraSimulator, table: Table, clock: Clock
    ) -> None:
        # At-least-once: the memory is saved PERSIST_DELAY after the events, not before them.
        sim.add_payout("T1", "success")
        table.put("T1", "pending")
        store = MemoryStore()
        assert announced(await run_until(make(store), clock, PERSIST_DELAY - 1)) == [("T1", "success")]
        assert store.values == {}
        assert announced(await run_until(make(store), clock, PERSIST_DELAY - 1)) == [("T1", "success")]

    @pytest.mark.anyio
    async def test_settlement_announced_by_a_callback_is_skipped(
        self, sim: VexoraSimulator, table: Table, clock: Clock
    ) -> None:
        sim.add_payout("T1", "failed")
        sim.add_payout("T2", "failed")
        table.put("T1", "pending")
        table.put("T2", "pending")
        store = MemoryStore()
        await store.aset("vexora.callback.failed.T1", {"at": "2026-01-01T00:00:00+00:00", "event": True})
        assert announced(await run_until(make(store), clock, 2 * INTERVAL)) == [("T2", "failed")]
        assert json.loads(store.values[POLL_MEMORY_KEY])["trades"] == {"T1": "failed", "T2": "failed"}

    @pytest.mark.anyio
    async def test_memory_forgets_what_the_table_made_final(
        self, sim: VexoraSimulator, table: Table, clock: Clock
    ) -> None:
        for trade_no in ("T1", "T2"):
            sim.add_payout(trade_no, "success")
            table.put(trade_no, "pending")
        store = MemoryStore()
        await run_until(make(store), clock, PERSIST_DELAY + 1)
        table.put("T1", "success")  # the sync caught up
        assert await run_until(make(store), clock, PERSIST_DELAY + 1) == []
        assert json.loads(store.values[POLL_MEMORY_KEY]) == {"trades": {"T2": "success"}}

    @pytest.mark.anyio
    async def test_memory_is_bounded(
        self, sim: VexoraSimulator, table: Table, clock: Clock, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for n in range(5):
            sim.add_payout(f"T{n}", "success")
            table.put(f"T{n}", "pending")
        store = MemoryStore()
        assert len(await run_until(make(store, max_remembered=2), clock, PERSIST_DELAY + 1)) == 5
        assert len(json.loads(store.values[POLL_MEMORY_KEY])["trades"]) == 2
        assert "more than max_remembered=2" in capsys.readouterr().out

    @pytest.mark.anyio
    async def test_failed_queries_are_asked_again_next_poll(
        self, sim: VexoraSimulator, table: Table, clock: Clock, capsys: pytest.CaptureFixture[str]
    ) -> None:
        sim.add_payout("T1", "success")
        table.put("T1", "pending")
        sim.add_fault("http_503", "queryPayOutResult", trade_no="T1", nth=(1,))
        events = await run_until(make(MemoryStore()), clock, 1.5 * INTERVAL)
        assert announced(events) == [("T1", "success")]
        assert "0 newly settled, 1 queries failed (first: trade 'T1'" in capsys.readouterr().out

    @pytest.mark.anyio
    async def test_warehouse_failure_is_logged_and_retried(
        self, sim: VexoraSimulator, table: Table, clock: Clock, capsys: pytest.CaptureFixture[str]
    ) -> None:
        sim.add_payout("T1", "success")
        trigger = make(MemoryStore(), table="not_created_yet")
        assert await run_until(trigger, clock, 1.5 * INTERVAL) == []
        assert "Reading non-final payouts from not_created_yet failed" in capsys.readouterr().out
        table.put("T1", "pending")
        trigger.table = "vexora_payout_status"
        assert announced(await run_until(trigger, clock, 1.5 * INTERVAL)) == [("T1", "success")]

    @pytest.mark.anyio
    async def test_broken_connection_keeps_the_watcher_alive(
        self, sim: VexoraSimulator, table: Table, clock: Clock, capsys: pytest.CaptureFixture[str]
    ) -> None:
        trigger = make(MemoryStore(), vexora_conn_id="no_such_vexora_conn")
        assert await run_until(trigger, clock, 2.5 * INTERVAL) == []
        assert capsys.readouterr().out.count("Watching Vexora payouts on 'no_such_vexora_conn' failed") == 3

    @pytest.mark.anyio
    async def test_outside_a_watcher_memory_lives_in_process(
        self, sim: VexoraSimulator, table: Table, clock: Clock
    ) -> None:
        sim.add_payout("T1", "success")
        table.put("T1", "pending")
        assert announced(await run_until(make(None), clock, 3 * INTERVAL)) == [("T1", "success")]

    @pytest.mark.anyio
    async def test_several_watched_assets_use_the_merchants_payouts_asset(
        self, sim: VexoraSimulator, table: Table, clock: Clock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from airflow.sdk.execution_time import context

        by_uri: dict[str, MemoryStore] = {}

        class Accessors(MemoryStore):
            async def aget(self, key: str, default: Any = None) -> Any:
                raise ValueError("Task has 2 concrete inlets and outlets")

        monkeypatch.setattr(
            context, "AssetStateStoreAccessor", lambda *, uri: by_uri.setdefault(uri, MemoryStore())
        )
        sim.add_payout("T1", "success")
        table.put("T1", "pending")
        await run_until(make(Accessors()), clock, PERSIST_DELAY + 1)
        store = by_uri[f"vexora://{sim.merchant_no}/payouts"]
        assert json.loads(store.values[POLL_MEMORY_KEY]) == {"trades": {"T1": "success"}}

    @pytest.mark.anyio
    async def test_the_warehouse_read_never_blocks_the_loop(
        self, sim: VexoraSimulator, table: Table, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sim.add_payout("T1", "success")
        table.put("T1", "pending")
        trigger = make(MemoryStore())
        read: Callable[[str], list[str]] = trigger.non_final_trade_nos
        loop_thread = threading.current_thread()
        reading, loop_ran = threading.Event(), threading.Event()
        # Per read: (off the loop's thread, the loop ran while it blocked). Recorded, not asserted
        # in the read: the trigger's error handling would swallow an assertion raised there.
        reads: list[tuple[bool, bool]] = []

        def blocking_read(merchant_no: str) -> list[str]:
            off_the_loop = threading.current_thread() is not loop_thread
            reading.set()
            # A handshake, not a timer: only the event loop sets loop_ran, so were this read on
            # the loop's thread, the loop could not run and the wait would give up (False).
            reads.append((off_the_loop, loop_ran.wait(5)))
            return read(merchant_no)

        async def on_the_loop() -> None:
            while not reading.is_set():
                await asyncio.sleep(0.001)
            loop_ran.set()

        monkeypatch.setattr(trigger, "non_final_trade_nos", blocking_read)
        helper = asyncio.create_task(on_the_loop())
        events: AsyncIterator[Any] = trigger.run()
        try:
            first = await asyncio.wait_for(anext(events), timeout=30)
        except TimeoutError:
            first = None
        finally:
            helper.cancel()
            await events.aclose()  # type: ignore[attr-defined]
        assert reads, "the trigger never read the status table"
        assert reads[0] == (True, True), "(read off the loop's thread, loop ran while the read blocked)"
        assert set(reads) == {(True, True)}  # every later read, too
        assert first is not None, "the trigger announced nothing"
        assert first.payload["trade_no"] == "T1"


class TestPollMemory:
    def test_remember_retain_and_bound(self) -> None:
        memory = PollMemory({"A": "success"}, limit=2)
        memory.remember("B", "unknown-0099")
        assert memory.is_final("A")
        assert not memory.is_final("B")
        memory.remember("C", "failed")
        assert list(memory.trades) == ["B", "C"]
        assert memory.forgotten == 1
        assert memory.retain(["C", "X"]) is True
        assert memory.value() == {"trades": {"C": "failed"}}
        assert memory.retain(["C"]) is False
        assert memory.dirty is False  # value() was taken: nothing changed since

    def test_saved_memory_over_the_limit_is_cut_on_load(self) -> None:
        memory = PollMemory({f"T{n}": "success" for n in range(5)}, limit=3)
        assert list(memory.trades) == ["T2", "T3", "T4"]
