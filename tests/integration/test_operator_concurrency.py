"""Overlapping syncs on one table, on every real warehouse: no task fails, the table converges.

Four syncs start together on an empty database (so they race to create the tables) over
overlapping trade lists in different orders, with gateway latency and faults, and some payouts
turning final between two polls. Afterwards the table holds each trade's last answer from the
gateway (a final one wherever any sync saw it final), and an error row only where no status
makes it obsolete.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest

from tests.integration.operator_support import Warehouse, run_sync, unique_table, vexora_connection
from vexora_provider import warehouse as warehouse_pkg
from vexora_provider.models import StatusMap
from vexora_provider.testing.faults import FaultRule
from vexora_provider.testing.simulator import VexoraSimulator

pytestmark = pytest.mark.integration

FINAL = {"success", "partial", "failed"}


def _threads(*jobs: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[Any] = [None] * len(jobs)

    def run(index: int, job: Callable[[], dict[str, Any]]) -> None:
        try:
            results[index] = job()
        except BaseException as exc:  # reported below: a failed sync fails the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    failures = [r for r in results if not isinstance(r, dict)]
    assert not failures, failures
    return results


class TestOverlappingSyncs:
    def test_four_syncs_from_an_empty_database_converge(self, warehouse: Warehouse) -> None:
        table, reference = unique_table("conc"), unique_table("ref")
        sim = VexoraSimulator(
            seed=23,
            faults=[
                FaultRule("latency", latency_ms=1, latency_max_ms=12),
                FaultRule("http_500", "queryPayOutResult", probability=0.25),
            ],
        )
        mix = {"success": 0.6, "partial": 0.1, "failed": 0.2, "unknown": 0.1}
        finals = sim.create_payouts(240, mix, regions=["nigeria"])
        stepping = sim.create_payouts(120, regions=["nigeria"], pending_polls=1, prefix="STEP")
        waiting = sim.create_payouts(40, {"pending": 1.0}, regions=["nigeria"], prefix="WAIT")
        trades = finals + stepping + waiting
        lists = [
            trades[0:250],
            list(reversed(trades[100:400])),
            trades[50:300:2] + trades[1::3],
            trades[::-5],
        ]
        try:
            with vexora_connection(sim, max_attempts=1) as vexora:
                summaries = _threads(
                    *[
                        lambda chosen=chosen: run_sync(
                            vexora,
                            warehouse.conn_id,
                            table,
                            chosen,
                            batch_size=40,
                            concurrency=8,
                            only_non_terminal=False,
                            max_failed_ratio=1,
                        )
                        for chosen in lists
                    ]
                )
                status_map = StatusMap()
                expected = {t: status_map.classify(sim.payout(t).status).value for t in trades}
                sim.clear_faults()
                done = [t for t in trades if expected[t] in FINAL]
                run_sync(vexora, warehouse.conn_id, reference, done, batch_size=100)
            rows = {row[1]: row for row in warehouse.rows(table)}
            q = warehouse.q
            counts = warehouse.select(f"SELECT count(*), count(DISTINCT {q('trade_no')}) FROM {q(table)}")
            assert counts[0][0] == counts[0][1] == len(rows)
            errors = {
                r[0]: r[1]
                for r in warehouse.select(
                    f"SELECT {q('trade_no')}, {q('failed_at')} FROM {q(table + '_errors')}"
                )
            }
            assert set(rows) | set(errors) == {t for chosen in lists for t in chosen}
            # Each loaded trade holds the gateway's last answer: final wherever a sync saw it final.
            assert {t: row[4] for t, row in rows.items()} == {t: expected[t] for t in rows}
            # Final answers are stable: their rows equal a clean run's, column for column.
            assert {t: rows[t] for t in done if t in rows} == {r[1]: r for r in warehouse.rows(reference)}
            fetched = {
                r[0]: _utc(r[1])
                for r in warehouse.select(f"SELECT {q('trade_no')}, {q('fetched_at')} FROM {q(table)}")
            }
            for trade_no, failed_at in errors.items():
                if trade_no in rows:  # an error row only beside an older, non-final status
                    assert rows[trade_no][4] not in FINAL, trade_no
                    assert fetched[trade_no] < _utc(failed_at), trade_no
            assert sum(s["loaded"] for s in summaries) > len(trades)
        finally:
            warehouse.drop(table)
            warehouse.drop(reference)


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class TestOldAnswerAfterNewAnswer:
    def test_a_slow_pending_answer_never_replaces_a_final_one(self, warehouse: Warehouse) -> None:
        """Sync A fetches ``0015``, then sync B fetches ``0000`` and commits, then A writes."""
        table = unique_table("race")
        sim = VexoraSimulator(seed=5)
        sim.add_payout("RACE1", "success", pending_polls=1, region="nigeria")
        held, fetched = threading.Event(), threading.Event()
        real_writer_for = warehouse_pkg.writer_for
        made: list[Any] = []

        def writer_for(hook: Any, name: Any, **kwargs: Any) -> Any:
            writer = real_writer_for(hook, name, **kwargs)
            if not made:  # sync A: hold its batch until sync B has committed
                write = writer.write_batch

                def write_later(statuses: Any, errors: Any, *, batch: int) -> Any:
                    fetched.set()
                    assert held.wait(60)
                    return write(statuses, errors, batch=batch)

                writer.write_batch = write_later
            made.append(writer)
            return writer

        try:
            with (
                vexora_connection(sim) as vexora,
                mock.patch("vexora_provider.operators.payout_status.writer_for", writer_for),
            ):
                sync_a: dict[str, Any] = {}
                thread = threading.Thread(
                    target=lambda: sync_a.update(run_sync(vexora, warehouse.conn_id, table, ["RACE1"]))
                )
                thread.start()
                assert fetched.wait(60)
                sync_b = run_sync(vexora, warehouse.conn_id, table, ["RACE1"])
                held.set()
                thread.join(60)
            assert sync_a["by_state"] == {"pending": 1}
            assert sync_b["by_state"] == {"success": 1}
            (row,) = warehouse.rows(table)
            assert (row[3], row[4], row[5]) == ("0000", "success", "success")
            assert row[9] is not None  # success_time kept
        finally:
            warehouse.drop(table)
