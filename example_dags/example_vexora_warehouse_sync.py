"""Scheduled warehouse sync: refresh every payout the warehouse does not yet hold as final.

Connections (Admin → Connections, env vars or a secrets backend):
- ``vexora_default``: the Vexora merchant account (type ``vexora``);
- ``vexora_warehouse``: any common-sql database holding the ``payouts`` table your own systems
  write (one row per payout you created, columns ``trade_no`` and ``region``).
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator

log = logging.getLogger(__name__)

# Payouts the status table has never seen, or has seen in a state that can still change; with
# one connection per Vexora region, the `region` param keeps each run to that region's payouts.
NOT_YET_FINAL_SQL = """
SELECT p.trade_no
FROM payouts p
LEFT JOIN vexora_payout_status s ON s.trade_no = p.trade_no
WHERE (s.trade_no IS NULL OR s.state NOT IN ('success', 'partial', 'failed'))
{% if params.region %}AND p.region = '{{ params.region | replace("'", "''") }}'{% endif %}
"""

with DAG(
    dag_id="example_vexora_warehouse_sync",
    description="Refresh Vexora payout statuses in the warehouse",
    schedule="*/30 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "vexora_conn_id": Param("vexora_default", type="string"),
        "warehouse_conn_id": Param("vexora_warehouse", type="string"),
        "region": Param("", type="string", description="only payouts of this region ('' = all)"),
    },
    tags=["vexora", "example"],
) as dag:
    sync = PayoutStatusToSqlOperator(
        task_id="refresh_payout_statuses",
        vexora_conn_id="{{ params.vexora_conn_id }}",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        trade_nos_sql=NOT_YET_FINAL_SQL,
        concurrency=32,
        batch_size=1000,
        max_failed_ratio=0.01,
    )

    @task
    def report(summary: dict[str, Any]) -> None:
        """Log the sync's counts so they show at the top of the task log.

        Returns nothing: the summary is already the sync's XCom (and a ``@task`` returning a dict
        would push each key as an XCom of its own).
        """
        log.info("payout sync summary: %s", summary)

    report(sync.output)
