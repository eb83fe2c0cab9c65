"""The example DAGs import cleanly and are wired the way their docs say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(EXAMPLE_DAGS))


class TestExampleDags:
    def test_import_without_errors(self, dagbag: Any) -> None:
        assert dagbag.import_errors == {}
        assert set(dagbag.dag_ids) == {
            "example_vexora_warehouse_sync",
            "example_vexora_sensor_gated",
            "example_vexora_mapped_sync",
            "example_vexora_settlement_events",
        }

    def test_connection_ids_come_from_params(self, dagbag: Any) -> None:
        for dag_id in dagbag.dag_ids:
            dag = dagbag.dags[dag_id]
            if dag_id != "example_vexora_settlement_events":  # scheduled on an asset: no gateway call
                assert dag.params["vexora_conn_id"] == "vexora_default"
            assert dag.params["warehouse_conn_id"] == "vexora_warehouse"

    def test_sensor_waits_on_the_batch_and_gates_downstream(self, dagbag: Any) -> None:
        dag = dagbag.dags["example_vexora_sensor_gated"]
        sensor = dag.get_task("wait_for_payouts")
        assert sensor.deferrable is True
        assert sensor.upstream_task_ids == {"payouts_in_batch"}
        assert dag.get_task("route").upstream_task_ids == {"wait_for_payouts"}
        for downstream in ("mark_orders_paid", "chase_failed_payouts"):
            assert dag.get_task(downstream).upstream_task_ids == {"route", "wait_for_payouts"}

    def test_sync_summary_is_reported(self, dagbag: Any) -> None:
        dag = dagbag.dags["example_vexora_warehouse_sync"]
        assert dag.get_task("report").upstream_task_ids == {"refresh_payout_statuses"}

    def test_booking_is_scheduled_on_the_payouts_asset(self, dagbag: Any) -> None:
        from vexora_provider.assets import payouts_asset

        dag = dagbag.dags["example_vexora_settlement_events"]
        assert list(dag.timetable.asset_condition.objects) == [payouts_asset("3060414594")]
        assert dag.task_ids == ["book_settled_payouts"]

    def test_large_sync_maps_over_batches_not_trades(self, dagbag: Any) -> None:
        dag = dagbag.dags["example_vexora_mapped_sync"]
        refresh = dag.get_task("refresh_batch")
        assert refresh.upstream_task_ids == {"plan_batches"}
        assert refresh.max_active_tis_per_dag == 4
