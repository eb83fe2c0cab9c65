"""End to end: a real Airflow (scheduler, triggerer, dag-processor, API server) runs the sensor.

``airflow standalone`` starts in an isolated ``AIRFLOW_HOME`` on free loopback ports, with the
DAGs of ``tests/integration/dags`` and ``vexora_default`` pointing at a simulator served from this
test process. Both DAGs start by themselves (``@once``). The test proves that:

- the deferrable sensor really deferred: it was seen in state ``deferred`` and the triggerer wrote
  a trigger log for it, which shows its polls;
- payouts that settle after a few polls make the sensor succeed, and its XCom is the statuses;
- a failed payout fails its sensor with the trade, code and message in the task log;
- the app secret is masked (``***``) in the task log that tried to print it, and appears in no
  log file, nor in XCom.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.airflow_support import AIRFLOW, Standalone, airflow_env, free_port
from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.server import SimulatorServer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAGS = Path(__file__).parent / "dags"
SECRET = "e2e-app-secret-4f1c9a7be2d3"
SETTLES, FAILS = "vexora_e2e_settles", "vexora_e2e_fails"
SENSOR = "wait_for_payouts"
DEADLINE = 300.0  # seconds for Airflow to start and both DAG runs to finish


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with VexoraSimulator(seed=5, secret=SECRET) as sim, sim.serve() as server:
        # Settle after a few polls: the sensor pokes once, defers, the trigger polls the rest.
        sim.add_payout("E2E-OK-1", "success", pending_polls=3, amount="250.00")
        sim.add_payout("E2E-OK-2", "partial", pending_polls=2, amount="90.00")
        sim.add_payout("E2E-FAIL-1", "failed", pending_polls=2, message="REJECTED_TRANSACTION")
        yield server


@pytest.fixture(scope="module")
def airflow_run(
    simulator: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Standalone, dict[tuple[str, str], set[str]]]]:
    if not AIRFLOW.exists():
        pytest.skip(f"no airflow executable at {AIRFLOW}")
    home = tmp_path_factory.mktemp("airflow-e2e")
    env = airflow_env(
        home,
        DAGS,
        free_port(),
        AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="False",  # the DAG asks for deferral itself
        AIRFLOW_CONN_VEXORA_DEFAULT=simulator.airflow_connection("nigeria", max_attempts=2),
    )
    airflow = Standalone(home, env)
    airflow.migrate()
    airflow.start()
    seen: dict[tuple[str, str], set[str]] = {}
    wanted = [(SETTLES, SENSOR), (SETTLES, "report"), (FAILS, SENSOR)]

    def finished() -> bool:
        states = airflow.task_states()
        for key, state in states.items():
            seen.setdefault(key, set()).add(str(state))
        return all(states.get(key) in {"success", "failed", "upstream_failed"} for key in wanted)

    try:
        # Every half second: deferral lasts seconds, frequent enough to see it.
        airflow.wait_until(finished, timeout=DEADLINE, describe=lambda: f"DAG runs; states {seen}")
        yield airflow, seen
    finally:
        airflow.stop()


def task_logs(airflow: Standalone, dag_id: str, task_id: str) -> list[Path]:
    return sorted((airflow.home / "logs").glob(f"dag_id={dag_id}/*/task_id={task_id}/*"))


class TestPayoutStatusSensorOnRealAirflow:
    def test_settling_payouts_defer_then_succeed(
        self, airflow_run: tuple[Standalone, dict[tuple[str, str], set[str]]]
    ) -> None:
        airflow, seen = airflow_run
        states = airflow.task_states()
        assert states[(SETTLES, SENSOR)] == "success", airflow.tail()
        assert states[(SETTLES, "report")] == "success", airflow.tail()
        assert "deferred" in seen[(SETTLES, SENSOR)], seen
        trigger_logs = [p for p in task_logs(airflow, SETTLES, SENSOR) if ".log.trigger." in p.name]
        assert trigger_logs, task_logs(airflow, SETTLES, SENSOR)
        assert "payouts not final yet" in "".join(p.read_text() for p in trigger_logs)

        (value,) = airflow.query(
            "select value from xcom where dag_id = ? and task_id = ? and key = 'return_value'",
            SETTLES,
            SENSOR,
        )[0]
        statuses = json.loads(value if isinstance(value, str) else bytes(value).decode())  # type: ignore[arg-type]
        assert [(s["trade_no"], s["state"]) for s in statuses] == [
            ("E2E-OK-1", "success"),
            ("E2E-OK-2", "partial"),
        ]
        assert statuses[0]["amount"] == "250.00"
        assert Decimal(statuses[1]["amount"]) < Decimal("90.00")  # partial: less than ordered was paid

    def test_failed_payout_fails_its_task(
        self, airflow_run: tuple[Standalone, dict[tuple[str, str], set[str]]]
    ) -> None:
        airflow, seen = airflow_run
        assert airflow.task_states()[(FAILS, SENSOR)] == "failed", airflow.tail()
        assert "deferred" in seen[(FAILS, SENSOR)], seen
        text = "".join(p.read_text() for p in task_logs(airflow, FAILS, SENSOR))
        assert "trade 'E2E-FAIL-1': payout failed (status 00029: REJECTED_TRANSACTION)" in text

    def test_secret_masked_in_logs_and_absent_everywhere(
        self, airflow_run: tuple[Standalone, dict[tuple[str, str], set[str]]]
    ) -> None:
        airflow, _ = airflow_run
        probe = "".join(p.read_text() for p in task_logs(airflow, SETTLES, "leak_probe"))
        assert "vexora connection vexora_default uses app secret ***" in probe
        logs = [p for p in (airflow.home / "logs").rglob("*") if p.is_file()]
        assert len(logs) >= 4
        leaked = [p for p in logs if SECRET in p.read_text(errors="replace")]
        assert not leaked
        # A failing assert on the call itself would print its arguments, and so the secret.
        leaked = len(airflow.query("select 1 from xcom where cast(value as text) like ?", f"%{SECRET}%"))
        assert not leaked, f"the app secret is in {leaked} XCom row(s)"
