"""A DAG touching every lineage source of the provider, planned by ``VEXORA_LINEAGE_PLAN`` (JSON).

Run by ``test_lineage.py`` with ``dag.test()`` in a fresh interpreter, with and without the
OpenLineage provider importable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.operators.create_payout import CreatePayoutOperator
from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator
from vexora_provider.sensors.payout_status import PayoutStatusSensor

PLAN = json.loads(os.environ.get("VEXORA_LINEAGE_PLAN", "{}"))

with DAG(
    "vexora_lineage",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    sync_sqlite = PayoutStatusToSqlOperator(
        task_id="sync_sqlite",
        sql_conn_id="wh_sqlite",
        trade_nos=PLAN.get("trades", []),
        max_failed_ratio=0.5,
    )
    sync_postgres = PayoutStatusToSqlOperator(
        task_id="sync_postgres",
        sql_conn_id="wh_postgres",
        table=PLAN.get("pg_table", "vexora_payout_status"),
        trade_nos_sql=PLAN.get("pg_sql", "SELECT 1"),
        max_failed_ratio=0.5,
    )
    wait_poke = PayoutStatusSensor(
        task_id="wait_poke", trade_nos=PLAN.get("trades", ["UNPLANNED"])[:2], poke_interval=0.1
    )
    wait_deferred = PayoutStatusSensor(
        task_id="wait_deferred",
        trade_nos=PLAN.get("deferred_trade", "UNPLANNED"),
        poke_interval=0.1,
        deferrable=True,
    )
    create = CreatePayoutOperator(
        task_id="create",
        trade_no=PLAN.get("create_trade"),
        amount="150.00",
        fields={"account_no": "0123456789", "bank_code": "058", "account_name": "Ada Obi"},
    )

    @task
    def query_with_hook() -> str:
        return VexoraHook().get_payout_status(PLAN["trades"][0]).state.value

    @task
    def report(sqlite: dict[str, object], postgres: dict[str, object]) -> None:
        summaries = {"sync_sqlite": sqlite, "sync_postgres": postgres}
        Path(PLAN["summary_file"]).write_text(json.dumps(summaries, default=str))

    # Last: under dag.test() every task runs in one process, and the hook lineage Airflow
    # collects there would otherwise show up in the events of the tasks after it.
    [wait_poke, wait_deferred, create, report(sync_sqlite.output, sync_postgres.output)] >> query_with_hook()
