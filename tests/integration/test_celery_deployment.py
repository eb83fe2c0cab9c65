"""A real CeleryExecutor deployment runs the examples, with the shared gateway budget on.

Airflow runs as users deploy it to scale out: a scheduler, a dag-processor, an API server, a
triggerer and two ``airflow celery worker`` processes (Celery hostnames ``vexora-w1`` and
``vexora-w2``), PostgreSQL as metadata database and Celery result backend, Redis as broker. The
simulator runs as ``vexora-simulator serve`` with 20,000 payouts and 10 ms of latency per call.
``vexora_default`` sets ``budget_storage`` and ``max_in_flight``, so every batch task and the
trigger take their requests from one budget.

``example_vexora_mapped_sync`` (scheduled, so it starts by itself) refreshes every payout of the
warehouse's ``payouts`` table in mapped batches of 2,000; once the first batch is in,
``example_vexora_sensor_gated`` is triggered for a batch of payouts that settle after a few polls.
The test proves that the batches ran on both workers, that the status table equals the
simulator's state with no duplicates and no error rows, that the simulator never had more than
``max_in_flight`` calls in flight, that the sensor deferred to the triggerer, and that the app
secret is in no log.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.airflow_support import (
    Components,
    celery_env,
    postgres_databases,
    simulator_process,
    start_celery_workers,
)
from tests.integration.operator_support import dsn_connection

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.celery]

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
SIMULATOR = Path(sys.executable).parent / "vexora-simulator"
SECRET = "celery-app-secret-7d2e9b14c0a5"
TRADES = 20_000
MAX_IN_FLIGHT = 8
WORKERS = ["vexora-w1", "vexora-w2"]
MAPPED, GATED = "example_vexora_mapped_sync", "example_vexora_sensor_gated"
# Settle after a few polls: one by the first sync batch, one by the sensor's poke, the rest in
# the triggerer.
GATE = {"GATE-0001": "success", "GATE-0002": "partial", "GATE-0003": "failed", "GATE-0004": "success"}
BATCHES = -(-(TRADES + len(GATE)) // 2000)  # the example's default batch size: 11 batches
GATE_POLLS = 5
DEADLINE = 600.0


@dataclass
class Deployment:
    components: Components
    admin: str
    metadata_dsn: str
    warehouse_dsn: str

    def query(self, dsn: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn) as conn:
            return list(conn.execute(sql, args).fetchall())

    def meta(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        return self.query(self.metadata_dsn, sql, *args)

    def run_state(self, dag_id: str) -> str | None:
        rows = self.meta("select state from dag_run where dag_id = %s", dag_id)
        return str(rows[0][0]) if rows else None

    def task_state(self, dag_id: str, task_id: str, map_index: int = -1) -> str | None:
        rows = self.meta(
            "select state from task_instance where dag_id = %s and task_id = %s and map_index = %s",
            dag_id,
            task_id,
            map_index,
        )
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def simulator(self, route: str) -> Any:
        return httpx.get(f"{self.admin}{route}", timeout=30).json()


@pytest.fixture(scope="module")
def simulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``vexora-simulator serve`` in its own process: the payouts, 10 ms per call."""
    if not SIMULATOR.exists():
        pytest.skip(f"no vexora-simulator executable next to {sys.executable}")
    with simulator_process(
        tmp_path_factory.mktemp("celery-simulator"),
        *("--seed", "15", "--secret", SECRET, "--payouts", str(TRADES)),
        *("--mix", "success=0.6,partial=0.1,failed=0.15,pending=0.15"),
        *("--latency-ms", "10", "--region", "indonesia"),
    ) as info:
        for trade_no, final in GATE.items():
            httpx.post(
                f"{info['admin_url']}payouts",
                json={"trade_no": trade_no, "final": final, "pending_polls": GATE_POLLS, "amount": "125.50"},
                timeout=10,
            ).raise_for_status()
        yield info


def _fill_warehouse(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("create table payouts (trade_no varchar(32) primary key, batch_id varchar(32))")
        with conn.cursor().copy("copy payouts (trade_no, batch_id) from stdin") as copy:
            for i in range(TRADES):
                copy.write_row((f"SIM{i:08d}", "bulk"))
            for trade_no in GATE:
                copy.write_row((trade_no, "gate"))
    # The status tables are not created here: the mapped batches start together on an empty
    # warehouse, and creating the tables must be race-free.


@pytest.fixture(scope="module")
def deployment(
    simulator_server: dict[str, Any],
    postgres_dsn: str,
    redis_url: str,
    celery_broker_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("airflow-celery")
    dags = home / "dags"
    dags.mkdir()
    for name in (f"{MAPPED}.py", f"{GATED}.py"):
        shutil.copy(EXAMPLES / name, dags / name)
    with postgres_databases(postgres_dsn, "meta", "warehouse") as (metadata_dsn, warehouse_dsn):
        _fill_warehouse(warehouse_dsn)
        vexora = json.loads(simulator_server["airflow_env"]["AIRFLOW_CONN_VEXORA_DEFAULT"])
        vexora["extra"] = {"budget_storage": redis_url, "max_in_flight": MAX_IN_FLIGHT}
        env = celery_env(
            home=home,
            dags=dags,
            metadata_dsn=metadata_dsn,
            broker_url=celery_broker_url,
            connections={
                "vexora_default": json.dumps(vexora),
                "vexora_warehouse": dsn_connection(warehouse_dsn, "postgres"),
            },
        )
        env["VEXORA_EXAMPLE_POKE_INTERVAL"] = "2"
        components = Components(home, env)
        try:
            components.airflow("db", "migrate")
            # Workers first and ready: the scheduler's first batches must find both.
            start_celery_workers(components, WORKERS, concurrency=3)
            for name, *command in (
                ("scheduler", "scheduler"),
                ("dag-processor", "dag-processor"),
                ("api-server", "api-server"),
                ("triggerer", "triggerer"),
            ):
                components.start(name, *command)
            run = Deployment(components, simulator_server["admin_url"], metadata_dsn, warehouse_dsn)
            _run_examples(run)
            yield run
        finally:
            components.stop_all()


def _run_examples(run: Deployment) -> None:
    deadline = time.monotonic() + DEADLINE
    gated_triggered = False
    while True:
        run.components.check_running()
        if not gated_triggered and run.task_state(MAPPED, "refresh_batch", 0) == "success":
            # The first batch holds the gate payouts (they sort first): it has polled them once.
            conf = json.dumps({"batch_id": "gate"})
            run.components.airflow("dags", "trigger", GATED, "--conf", conf)
            gated_triggered = True
        states = (run.run_state(MAPPED), run.run_state(GATED))
        if gated_triggered and all(state in ("success", "failed") for state in states):
            return
        assert time.monotonic() < deadline, (
            f"runs not done in {DEADLINE:.0f}s: {states}\n{run.components.tail()}"
        )
        time.sleep(2)


class TestCeleryDeployment:
    def test_both_runs_succeed(self, deployment: Deployment) -> None:
        assert deployment.run_state(MAPPED) == "success", deployment.components.tail()
        assert deployment.run_state(GATED) == "success", deployment.components.tail()

    def test_batches_ran_on_both_workers(self, deployment: Deployment) -> None:
        rows = deployment.meta(
            "select ti.map_index, ti.state, m.worker from task_instance ti "
            "join celery_taskmeta m on m.task_id = ti.external_executor_id "
            "where ti.dag_id = %s and ti.task_id = 'refresh_batch'",
            MAPPED,
        )
        assert sorted(index for index, _, _ in rows) == list(range(BATCHES))
        assert {state for _, state, _ in rows} == {"success"}
        assert {str(worker).split("@")[0] for _, _, worker in rows} == set(WORKERS)

    def test_table_equals_the_simulator(self, deployment: Deployment) -> None:
        payouts = {p["tradeNo"]: p for p in deployment.simulator("payouts")["payouts"]}
        rows = deployment.query(
            deployment.warehouse_dsn,
            "select trade_no, platform_trade_no, status_code, order_amount, pay_amount "
            "from vexora_payout_status",
        )
        assert len(rows) == len(payouts) == TRADES + len(GATE)
        assert {row[0] for row in rows} == set(payouts)  # a primary key: one row per trade
        wrong = []
        for trade_no, platform_trade_no, status_code, order_amount, pay_amount in rows:
            payout = payouts[trade_no]
            paid = payout["status"] in ("0000", "0001")
            expected = (
                payout["platFormTradeNo"],
                payout["status"],
                Decimal(payout["orderAmount"]),
                Decimal(payout["payAmount"]) if paid else Decimal(0),
            )
            if (platform_trade_no, status_code, order_amount, pay_amount) != expected:
                wrong.append(trade_no)
        assert wrong == []
        states = {payouts[t]["status"] for t in GATE}
        assert "0015" not in states  # the gate payouts settled, and the table says so

    def test_no_error_rows(self, deployment: Deployment) -> None:
        (count,) = deployment.query(
            deployment.warehouse_dsn, "select count(*) from vexora_payout_status_errors"
        )[0]
        assert count == 0

    def test_in_flight_never_above_the_shared_budget(self, deployment: Deployment) -> None:
        stats = deployment.simulator("stats")
        assert stats["total"] >= TRADES + len(GATE)
        # Four batches at concurrency 16 ask for 64 at once; the budget lets 8 through.
        assert 1 < stats["in_flight_peak"] <= MAX_IN_FLIGHT

    def test_sensor_deferred_to_the_triggerer(self, deployment: Deployment) -> None:
        assert deployment.task_state(GATED, "wait_for_payouts") == "success"
        assert deployment.task_state(GATED, "record_statuses") == "success"
        logs = deployment.components.home / "logs"
        trigger_logs = list(logs.glob(f"dag_id={GATED}/*/task_id=wait_for_payouts/*.log.trigger.*"))
        assert trigger_logs, sorted(p.name for p in logs.rglob("*"))

    def test_secret_in_no_log(self, deployment: Deployment) -> None:
        files = [p for p in deployment.components.home.rglob("*") if p.is_file()]
        logs = [p for p in files if p.suffix in (".log", ".out") or ".log." in p.name]
        assert len(logs) >= BATCHES + 6
        leaked = [str(p) for p in logs if SECRET in p.read_text(errors="replace")]
        assert leaked == []
