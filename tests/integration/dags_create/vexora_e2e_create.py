"""DAGs run by ``tests/integration/test_e2e_create_payout.py``: mapped creates that get killed.

One DAG per seed, each creating two payouts with dynamic task mapping and waiting until they are
final: map index 0 names its trade number, map index 1 lets the operator derive it. Half the DAGs
wait deferred, half poke from the worker. Every task has ``retries=3`` and a one-second delay, so
the test's SIGKILLs are retried quickly.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from vexora_provider.operators.create_payout import CreatePayoutOperator

SEEDS = (3, 7, 11, 19)
DEFERRABLE = frozenset({7, 19})
TASK_ID = "create_payout"
FIELDS = {"accountNo": "0123456789", "bankCode": "058", "accountName": "Ada Obi"}


def dag_id(seed: int) -> str:
    return f"vexora_e2e_create_{seed}"


def named_trade_no(seed: int) -> str:
    """The trade number map index 0 names (index 1's is derived from the run)."""
    return f"E2E-K{seed}-0"


def amount(seed: int, map_index: int) -> str:
    return f"{seed * 10 + map_index}.25"


for seed in SEEDS:
    with DAG(
        dag_id=dag_id(seed),
        schedule="@once",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        default_args={"retries": 3, "retry_delay": timedelta(seconds=1)},
    ):
        CreatePayoutOperator.partial(
            task_id=TASK_ID,
            fields=FIELDS,
            remark="e2e {{ ti.map_index }}",
            wait_for_completion=True,
            deferrable=seed in DEFERRABLE,
            poll_interval=1,
            wait_timeout=240,
        ).expand_kwargs(
            [
                {"trade_no": named_trade_no(seed), "amount": amount(seed, 0)},
                {"amount": amount(seed, 1)},
            ]
        )
