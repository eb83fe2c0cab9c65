"""Create a batch of payouts, wait for them in the triggerer, then load their statuses into the warehouse.

``payout_requests`` reads one batch from the warehouse table ``payout_requests`` (your systems
fill it: one row per payout to make). Each row becomes one mapped ``CreatePayoutOperator`` whose
trade number is the row's business key, so a retry, a rerun or a cleared task finds the payout at
Vexora instead of paying again. Each create waits deferred (no worker slot held) until its payout
is final; a failed payout fails its own mapped task only. ``sync_statuses`` then loads the status
of every payout of the batch into ``vexora_payout_status``, also when some creates failed, and
``report`` counts the batch -- or, when a payout failed, is skipped, so the DAG run fails.

Connections: ``vexora_default`` (type ``vexora``) and ``vexora_warehouse`` (common-sql database
with the ``payout_requests`` table: ``trade_no``, ``batch_id``, ``amount`` as DECIMAL or TEXT --
never FLOAT --, ``account_no``, ``bank_code``, ``account_name``). Beneficiary field names differ by
region: use the ones your Vexora region documents.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any

import pendulum
from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.sdk import DAG, BaseHook, Param, task

from vexora_provider.operators.create_payout import CreatePayoutOperator
from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator

log = logging.getLogger(__name__)

# A payment API deserves a patient poll; set this lower to watch payouts settle live.
POLL_INTERVAL = float(os.environ.get("VEXORA_EXAMPLE_POKE_INTERVAL", "60"))


def exact_amount(value: object) -> str:
    """The amount as exact decimal text; a FLOAT column has already lost the cents."""
    if isinstance(value, float):
        raise TypeError("payout_requests.amount is a FLOAT; store amounts as DECIMAL or TEXT")
    return str(value)  # a Decimal's str() is its exact digits


with DAG(
    dag_id="example_vexora_create_payouts",
    description="Create a batch of payouts, wait for them deferred, load their statuses",
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
    def payout_requests(params: dict[str, Any]) -> list[dict[str, Any]]:
        """Return one ``CreatePayoutOperator`` keyword set per payout of the batch."""
        hook = BaseHook.get_hook(params["warehouse_conn_id"])
        assert isinstance(hook, DbApiHook)
        rows = hook.get_records(
            "SELECT trade_no, amount, account_no, bank_code, account_name FROM payout_requests "
            f"WHERE batch_id = {hook.placeholder} ORDER BY trade_no",
            parameters=[params["batch_id"]],
        )
        return [
            {
                "trade_no": trade_no,
                "amount": exact_amount(amount),
                "fields": {"accountNo": account_no, "bankCode": bank_code, "accountName": account_name},
            }
            for trade_no, amount, account_no, bank_code, account_name in rows
        ]

    @task(multiple_outputs=False)  # one XCom: the counts
    def report(payouts: list[dict[str, Any]]) -> dict[str, int]:
        """Count the batch's payouts by state, and how many this run created (not found existing)."""
        counts = Counter(payout["state"] for payout in payouts)
        counts["created"] = sum(1 for payout in payouts if payout["created"])
        log.info("Batch paid: %s", dict(counts))
        return dict(counts)

    @task
    def trade_numbers(requests: list[dict[str, Any]]) -> list[str]:
        """The batch's trade numbers, for the status sync."""
        return [request["trade_no"] for request in requests]

    requests = payout_requests()

    create = CreatePayoutOperator.partial(
        task_id="create_payout",
        vexora_conn_id="{{ params.vexora_conn_id }}",
        remark="batch {{ params.batch_id }}",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        exponential_backoff=True,
        max_wait=15 * 60,
        retries=3,
        max_active_tis_per_dag=16,  # creates in flight at once
    ).expand_kwargs(requests)

    sync = PayoutStatusToSqlOperator(
        task_id="sync_statuses",
        vexora_conn_id="{{ params.vexora_conn_id }}",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        trade_nos=trade_numbers(requests),
        only_non_terminal=False,
        trigger_rule="all_done",  # also record the payouts whose create or wait failed
    )
    create >> sync
    report(create.output)
