"""DAGs run by ``tests/integration/test_e2e_airflow.py`` on a real scheduler and triggerer.

Both start on their own (``@once``, unpaused) and wait, deferred, on payouts that the test's
simulator settles after a few polls. The trade numbers arrive through a Jinja template, so the
sensor sees the list as rendered text, as it would in many users' DAGs.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseHook, task

from vexora_provider.sensors.payout_status import PayoutStatusSensor

log = logging.getLogger(__name__)

# Kept in step with the payouts test_e2e_airflow.py scripts on the simulator.
SETTLING = ["E2E-OK-1", "E2E-OK-2"]
FAILING = ["E2E-FAIL-1"]

COMMON: dict[str, Any] = {
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "default_args": {"retries": 0},
}


@task
def leak_probe() -> None:
    """Try to log the app secret: the task log must show it masked."""
    conn = BaseHook.get_connection("vexora_default")
    log.info("vexora connection %s uses app secret %s", conn.conn_id, conn.password)


@task
def report(statuses: list[dict[str, Any]]) -> None:
    """Log what the sensor returned (plain JSON from XCom)."""
    for status in statuses:
        log.info("payout %s is %s (status %s)", status["trade_no"], status["state"], status["status_code"])


with DAG(dag_id="vexora_e2e_settles", schedule="@once", params={"trade_nos": SETTLING}, **COMMON):
    wait = PayoutStatusSensor(
        task_id="wait_for_payouts",
        trade_nos="{{ params.trade_nos }}",
        deferrable=True,
        poke_interval=2,
        timeout=300,
    )
    leak_probe() >> wait
    report(wait.output)

with DAG(dag_id="vexora_e2e_fails", schedule="@once", params={"trade_nos": FAILING}, **COMMON):
    PayoutStatusSensor(
        task_id="wait_for_payouts",
        trade_nos="{{ params.trade_nos }}",
        deferrable=True,
        poke_interval=2,
        timeout=300,
    )
