"""Hook-level lineage: one report per hook and direction, whatever the number of calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.lineage.hook import PayoutsLineage
from vexora_provider.operators.create_payout import CreatePayoutOperator
from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator
from vexora_provider.sensors.payout_status import PayoutStatusSensor
from vexora_provider.testing import VexoraSimulator

MERCHANT = "3060414594"


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[VexoraSimulator]:
    with VexoraSimulator(seed=2) as sim:
        for name, value in sim.airflow_env().items():
            monkeypatch.setenv(name, value)
        yield sim


def hook_for(sim: VexoraSimulator, **kwargs: Any) -> VexoraHook:
    return VexoraHook(transport=sim.transport(), async_transport=sim.async_transport(), **kwargs)


def collected(collector: Any) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    lineage = collector.collected_assets
    return (
        [(i.asset.uri, i.count) for i in lineage.inputs],
        [(o.asset.uri, o.count) for o in lineage.outputs],
    )


class TestPayoutsLineage:
    def test_each_direction_is_reported_once(self, collector: Any) -> None:
        context = object()
        lineage = PayoutsLineage(context)
        with mock.patch.object(collector, "add_input_asset", wraps=collector.add_input_asset) as add:
            for _ in range(3):
                lineage.read(MERCHANT)
        lineage.wrote(MERCHANT)
        lineage.wrote(MERCHANT)
        assert add.call_count == 1
        uri = f"vexora://{MERCHANT}/payouts"
        assert collected(collector) == ([(uri, 1)], [(uri, 1)])
        assert collector.collected_assets.inputs[0].context is context

    def test_disabled_reports_nothing(self, collector: Any) -> None:
        lineage = PayoutsLineage(object(), enabled=False)
        lineage.read(MERCHANT)
        lineage.wrote(MERCHANT)
        assert not collector.has_collected

    def test_without_a_lineage_reader_the_collector_is_a_no_op(self) -> None:
        from airflow.sdk.lineage import NoOpCollector, get_hook_lineage_collector

        get_hook_lineage_collector.cache_clear()
        try:
            PayoutsLineage(object()).read(MERCHANT)
            assert isinstance(get_hook_lineage_collector(), NoOpCollector)
        finally:
            get_hook_lineage_collector.cache_clear()

    def test_a_broken_collector_never_fails_the_call(
        self, collector: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        with (
            mock.patch.object(collector, "add_input_asset", side_effect=RuntimeError("boom")),
            caplog.at_level(logging.WARNING, logger="vexora_provider.lineage.hook"),
        ):
            PayoutsLineage(object()).read(MERCHANT)
        assert "Could not report the Vexora payouts input to hook lineage" in caplog.text


class TestVexoraHookLineage:
    def test_sync_queries_report_the_payouts_read_once(self, sim: VexoraSimulator, collector: Any) -> None:
        trades = sim.create_payouts(5, regions=["nigeria"])
        hook = hook_for(sim)
        with mock.patch.object(collector, "add_input_asset", wraps=collector.add_input_asset) as add:
            for trade_no in trades:
                hook.get_payout_status(trade_no)
            hook.find_payout(trades[0])
            hook.get_balance()
        assert add.call_count == 1
        assert collected(collector) == ([(f"vexora://{sim.merchant_no}/payouts", 1)], [])

    def test_a_bulk_stream_reports_once_not_per_trade(self, sim: VexoraSimulator, collector: Any) -> None:
        trades = sim.create_payouts(300, regions=["nigeria"])
        hook = hook_for(sim)

        async def stream() -> int:
            return len([item async for item in hook.astream_payout_statuses(trades, concurrency=16)])

        with mock.patch.object(collector, "add_input_asset", wraps=collector.add_input_asset) as add:
            assert asyncio.run(stream()) == 300
            asyncio.run(hook.aget_payout_status(trades[0]))
        assert add.call_count == 1
        assert collected(collector)[0] == [(f"vexora://{sim.merchant_no}/payouts", 1)]

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_a_create_reports_the_payouts_read_and_written(
        self, sim: VexoraSimulator, collector: Any, mode: str
    ) -> None:
        hook = hook_for(sim)
        request: dict[str, Any] = {"trade_no": "NEW-1", "amount": "10.00", "fields": {"account_no": "1"}}
        if mode == "sync":
            hook.create_payout(**request)
        else:
            asyncio.run(hook.acreate_payout(**request))
        uri = f"vexora://{sim.merchant_no}/payouts"
        assert collected(collector) == ([(uri, 1)], [(uri, 1)])

    def test_the_balance_alone_reports_nothing(self, sim: VexoraSimulator, collector: Any) -> None:
        hook_for(sim).get_balance()
        assert not collector.has_collected

    def test_hook_lineage_off_reports_nothing(self, sim: VexoraSimulator, collector: Any) -> None:
        (trade_no,) = sim.create_payouts(1, regions=["nigeria"])
        hook_for(sim, hook_lineage=False).get_payout_status(trade_no)
        assert not collector.has_collected

    def test_the_providers_tasks_report_their_own_lineage_instead(self) -> None:
        tasks = [
            PayoutStatusToSqlOperator(task_id="s", sql_conn_id="wh", trade_nos=["T1"]),
            PayoutStatusSensor(task_id="w", trade_nos="T1"),
            CreatePayoutOperator(task_id="c", amount="1.00"),
        ]
        for task in tasks:
            assert task.hook.lineage.enabled is False
