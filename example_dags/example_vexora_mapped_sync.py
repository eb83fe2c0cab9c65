"""A large sync split into batches with dynamic task mapping — over batches, never per trade.

``plan_batches`` reads the trade-number range boundaries of every ``batch_size`` payouts (a few
short strings, so the XCom stays tiny however many payouts there are) and each mapped
``PayoutStatusToSqlOperator`` selects and refreshes its own key range. ``max_active_tis_per_dag``
caps how many batches hit the gateway at once: total in-flight requests are
``concurrency × max_active_tis_per_dag``, keep that within what your Vexora account allows.

Connections: ``vexora_default`` (type ``vexora``), ``vexora_warehouse`` (common-sql database with
the ``payouts`` table).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.sdk import DAG, BaseHook, Param, task

from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator


def _literal(value: str) -> str:
    """Quote a trade number as an SQL string literal (standard quote doubling)."""
    return "'" + value.replace("'", "''") + "'"


with DAG(
    dag_id="example_vexora_mapped_sync",
    description="Refresh all payout statuses, one mapped task per batch of trade numbers",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "batch_size": Param(2000, type="integer", minimum=1),
        "vexora_conn_id": Param("vexora_default", type="string"),
        "warehouse_conn_id": Param("vexora_warehouse", type="string"),
        "region": Param("", type="string", description="only payouts of this region ('' = all)"),
    },
    tags=["vexora", "example"],
) as dag:

    @task
    def plan_batches(params: dict[str, Any]) -> list[str]:
        """Return one SELECT per batch, each covering a half-open range of trade numbers."""
        hook = BaseHook.get_hook(params["warehouse_conn_id"])
        assert isinstance(hook, DbApiHook)
        size = int(params["batch_size"])
        region = f" AND region = {_literal(params['region'])}" if params["region"] else ""
        # Every size-th trade number starts a batch; the window function keeps this set-based.
        starts = [
            row[0]
            for row in hook.get_records(
                "SELECT trade_no FROM (SELECT trade_no, ROW_NUMBER() OVER (ORDER BY trade_no) AS rn"
                f" FROM payouts WHERE 1 = 1{region}) numbered WHERE (rn - 1) % {size} = 0 ORDER BY trade_no"
            )
        ]
        queries = []
        for i, start in enumerate(starts):
            upper = f" AND trade_no < {_literal(starts[i + 1])}" if i + 1 < len(starts) else ""
            queries.append(f"SELECT trade_no FROM payouts WHERE trade_no >= {_literal(start)}{upper}{region}")
        return queries

    PayoutStatusToSqlOperator.partial(
        task_id="refresh_batch",
        vexora_conn_id="{{ params.vexora_conn_id }}",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        concurrency=16,
        max_active_tis_per_dag=4,
    ).expand(trade_nos_sql=plan_batches())
