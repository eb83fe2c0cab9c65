"""The example DAGs import cleanly, are wired the way their docs say, and the gated one runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from vexora_provider.testing.server import SimulatorServer

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


# What `make demo` sets too: the examples' deferred waits poll every fraction of a second.
POLL_ENV = {"VEXORA_EXAMPLE_POKE_INTERVAL": "0.2"}


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        for name, value in POLL_ENV.items():
            patch.setenv(name, value)
        return DagBag(dag_folder=str(EXAMPLE_DAGS))


class TestExampleDags:
    def test_import_without_errors(self, dagbag: Any) -> None:
        assert dagbag.import_errors == {}
        assert set(dagbag.dag_ids) == {
            "example_vexora_warehouse_sync",
            "example_vexora_sensor_gated",
            "example_vexora_mapped_sync",
            "example_vexora_create_payouts",
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

    def test_statuses_are_recorded_whatever_the_sensor_does(self, dagbag: Any) -> None:
        record = dagbag.dags["example_vexora_sensor_gated"].get_task("record_statuses")
        assert record.upstream_task_ids == {"payouts_in_batch", "wait_for_payouts"}
        assert record.trigger_rule == "all_done"

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

    def test_creates_are_mapped_deferred_then_synced(self, dagbag: Any) -> None:
        dag = dagbag.dags["example_vexora_create_payouts"]
        create = dag.get_task("create_payout")
        assert create.upstream_task_ids == {"payout_requests"}
        assert create.partial_kwargs["deferrable"] is True
        assert create.partial_kwargs["wait_for_completion"] is True
        assert create.partial_kwargs["retries"] == 3
        sync = dag.get_task("sync_statuses")
        assert sync.upstream_task_ids == {"create_payout", "trade_numbers"}
        assert sync.trigger_rule == "all_done"
        assert dag.get_task("report").upstream_task_ids == {"create_payout"}


def run_example(
    dagbag: Any,
    dag_id: str,
    warehouse: Path,
    server: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    conf: dict[str, Any],
) -> Any:
    """Run an example DAG with ``dag.test()`` against ``server`` and the SQLite ``warehouse``."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_VEXORA_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(warehouse)})
    )
    for name, value in {**server.airflow_env(), **POLL_ENV}.items():
        monkeypatch.setenv(name, value)
    # dag.test() runs the DAG as Airflow finds it in a configured DAG bundle.
    bundle = {"name": "examples", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(EXAMPLE_DAGS)}}
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))
    return dagbag.dags[dag_id].test(run_conf=conf)


@pytest.mark.integration
class TestSensorGatedRun:
    def test_sensor_failure_still_reaches_the_warehouse(
        self,
        dagbag: Any,
        vexora_airflow_db: str,
        vexora_simulator_server: SimulatorServer,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        sim = vexora_simulator_server.sim
        sim.add_payout("GATE-1", "success", pending_polls=0, amount="120.50")
        sim.add_payout("GATE-2", "0042", pending_polls=0, amount="75.25")  # undocumented: the sensor fails
        warehouse = tmp_path / "warehouse.db"
        with sqlite3.connect(warehouse) as db:
            db.execute("CREATE TABLE payouts (trade_no TEXT PRIMARY KEY, batch_id TEXT)")
            db.executemany("INSERT INTO payouts VALUES (?, 'b1')", [("GATE-1",), ("GATE-2",)])

        run = run_example(
            dagbag,
            "example_vexora_sensor_gated",
            warehouse,
            vexora_simulator_server,
            monkeypatch,
            {"batch_id": "b1"},
        )

        assert run.state == "failed"  # the sensor's failure still shows on the run
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert states == {
            "payouts_in_batch": "success",
            "wait_for_payouts": "failed",
            "route": "upstream_failed",
            "mark_orders_paid": "upstream_failed",
            "chase_failed_payouts": "upstream_failed",
            "record_statuses": "success",
        }
        with sqlite3.connect(warehouse) as db:
            rows = db.execute(
                "SELECT trade_no, state, status_code, amount FROM vexora_payout_status ORDER BY trade_no"
            ).fetchall()
        assert rows == [("GATE-1", "success", "0000", "120.50"), ("GATE-2", "unknown", "0042", "75.25")]


@pytest.mark.integration
class TestCreatePayoutsRun:
    def test_each_request_pays_once_and_every_status_is_loaded(
        self,
        dagbag: Any,
        vexora_airflow_db: str,
        vexora_simulator_server: SimulatorServer,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        sim = vexora_simulator_server.sim
        # The first create is accepted, then its connection drops: the task must not pay twice.
        sim.add_fault("accept_then_reset", "disbursements", trade_no="PAY-2", nth=(1,))
        sim.add_payout("PAY-3", "failed", pending_polls=0, created=False, message="INVALID_ACCOUNT")
        warehouse = tmp_path / "warehouse.db"
        with sqlite3.connect(warehouse) as db:
            db.execute(
                "CREATE TABLE payout_requests (trade_no TEXT PRIMARY KEY, batch_id TEXT, amount TEXT,"
                " account_no TEXT, bank_code TEXT, account_name TEXT)"
            )
            rows = [(f"PAY-{i}", "b1", f"{i}0.50", "0123456789", "058", "Ada Obi") for i in (1, 2, 3)]
            db.executemany("INSERT INTO payout_requests VALUES (?, ?, ?, ?, ?, ?)", rows)

        run = run_example(
            dagbag,
            "example_vexora_create_payouts",
            warehouse,
            vexora_simulator_server,
            monkeypatch,
            {"batch_id": "b1"},
        )

        assert run.state == "failed"  # PAY-3's payout failed: the run says so
        states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
        assert states == {
            ("payout_requests", -1): "success",
            ("trade_numbers", -1): "success",
            ("create_payout", 0): "success",
            ("create_payout", 1): "success",
            ("create_payout", 2): "failed",
            ("sync_statuses", -1): "success",
            ("report", -1): "upstream_failed",
        }
        assert [sim.creates(f"PAY-{i}") for i in (1, 2, 3)] == [1, 1, 1]
        with sqlite3.connect(warehouse) as db:
            loaded = db.execute(
                "SELECT trade_no, state FROM vexora_payout_status ORDER BY trade_no"
            ).fetchall()
        assert loaded == [("PAY-1", "success"), ("PAY-2", "success"), ("PAY-3", "failed")]
