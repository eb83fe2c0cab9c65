"""DAG run by ``tests/integration/test_e2e_events.py``: scheduled on a payouts asset with a watcher.

The watcher polls the e2e warehouse's non-final payouts of merchant ``WATCHED`` through the
``vexora_watch`` connection; each settlement it announces queues a run of this DAG, whose task
returns the trade numbers it was triggered with.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, AssetWatcher, task

from vexora_provider.assets import payouts_asset, settlements_for_run
from vexora_provider.triggers.settlement import PayoutSettledTrigger

WATCHED = "7000000002"  # kept in step with test_e2e_events.py

watched = payouts_asset(
    WATCHED,
    watchers=[
        AssetWatcher(
            name="vexora_e2e_settled",
            trigger=PayoutSettledTrigger(
                vexora_conn_id="vexora_watch", sql_conn_id="e2e_warehouse", poll_interval=2, concurrency=4
            ),
        )
    ],
)

with DAG(
    dag_id="vexora_e2e_watcher",
    schedule=[watched],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
):

    @task(inlets=[watched])
    def seen(**context: Any) -> list[str]:
        """Return the settled trade numbers this run handles."""
        return [s["trade_no"] for s in settlements_for_run(context, watched)]

    seen()
