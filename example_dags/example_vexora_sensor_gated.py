"""Sensor-gated pipeline: wait for a batch of payouts, then book the paid ones and chase the rest.

A deferrable ``PayoutStatusSensor`` waits in the triggerer (no worker slot held) until every
payout of the batch is final. Failed payouts do not fail the sensor here (``fail_on_failed=False``):
a branch sends them to a follow-up task while the paid orders are marked paid.

The sensor can still fail: on a status code Vexora does not document, on queries failing poll
after poll, at its timeout. ``record_statuses`` writes the batch's statuses to the warehouse
whatever the sensor's outcome (``trigger_rule=ALL_DONE``); with the default ``ALL_SUCCESS`` it
would be ``upstream_failed`` and the warehouse would never hear of the trouble.

Connections: ``vexora_default`` (type ``vexora``) and ``vexora_warehouse`` (common-sql database
with the ``payouts`` table, columns ``trade_no`` and ``batch_id``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pendulum
from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.sdk import DAG, BaseHook, Param, TriggerRule, task

from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator
from vexora_provider.sensors.payout_status import PayoutStatusSensor

log = logging.getLogger(__name__)

SETTLED_OK = {"success", "partial"}
# A payment API deserves a patient poll; `make demo` shortens it to watch payouts settle live.
POKE_INTERVAL = float(os.environ.get("VEXORA_EXAMPLE_POKE_INTERVAL", "60"))

with DAG(
    dag_id="example_vexora_sensor_gated",
    description="Wait for payouts to settle, then mark orders paid or chase failures",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "batch_id": Param("demo-batch", type="string"),
        "vexora_conn_id": Param("vexora_default", type="string"),
        "warehouse_conn_id": Param("vexora_warehouse", type="string"),
    },
    tags=["vexora", "example"],
) as dag:

    @task
    def payouts_in_batch(params: dict[str, Any]) -> list[str]:
        """Return the trade numbers of one payout batch from the warehouse."""
        hook = BaseHook.get_hook(params["warehouse_conn_id"])
        assert isinstance(hook, DbApiHook)
        rows = hook.get_records(
            f"SELECT trade_no FROM payouts WHERE batch_id = {hook.placeholder} ORDER BY trade_no",
            parameters=[params["batch_id"]],
        )
        return [row[0] for row in rows]

    trade_nos = payouts_in_batch()

    wait = PayoutStatusSensor(
        task_id="wait_for_payouts",
        vexora_conn_id="{{ params.vexora_conn_id }}",
        trade_nos=trade_nos,
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=6 * 60 * 60,
        fail_on_failed=False,
    )

    @task.branch
    def route(statuses: list[dict[str, Any]]) -> list[str]:
        """Send paid payouts to booking and failed ones to follow-up (both when mixed)."""
        routes = []
        if any(s["state"] in SETTLED_OK for s in statuses):
            routes.append("mark_orders_paid")
        if any(s["state"] not in SETTLED_OK for s in statuses):
            routes.append("chase_failed_payouts")
        return routes

    @task
    def mark_orders_paid(statuses: list[dict[str, Any]]) -> int:
        """Book the settled payouts (here: log them; in real life, update your orders)."""
        paid = [s for s in statuses if s["state"] in SETTLED_OK]
        for s in paid:
            log.info("order for %s paid: %s (%s)", s["trade_no"], s["amount"] or s["pay_amount"], s["state"])
        return len(paid)

    @task
    def chase_failed_payouts(statuses: list[dict[str, Any]]) -> int:
        """Hand failed payouts to a human: code and message say why the gateway refused them."""
        failed = [s for s in statuses if s["state"] not in SETTLED_OK]
        for s in failed:
            log.warning("payout %s %s: %s (%s)", s["trade_no"], s["state"], s["status_code"], s["message"])
        return len(failed)

    route(wait.output) >> [mark_orders_paid(wait.output), chase_failed_payouts(wait.output)]

    record_statuses = PayoutStatusToSqlOperator(
        task_id="record_statuses",
        vexora_conn_id="{{ params.vexora_conn_id }}",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        trade_nos=trade_nos,
        trigger_rule=TriggerRule.ALL_DONE,  # after the sensor, whether it succeeded or failed
    )
    wait >> record_statuses
