"""Event-driven booking: a run starts when payouts settle, and books each one exactly once.

The DAG is scheduled on the merchant's payouts asset, ``vexora://<merchant>/payouts``. Settlements
reach it as asset events from Vexora's callbacks (the provider's API-server plugin, with
``notifyUrl`` = ``https://<airflow>/vexora/callbacks/vexora_default``), from a
``PayoutSettledTrigger`` watcher, or from a warehouse sync with the asset in its ``outlets``. See
the events guide in the docs for which to use.

Airflow coalesces events: one run may carry many settlements, and the same settlement may come
from two sources or in two runs. The booking therefore reads every event of the run
(``triggering_asset_events``, plus those that arrived after the run was triggered) and inserts
with ``ON CONFLICT DO NOTHING`` on the trade number (SQLite and PostgreSQL syntax), so a
settlement booked once is never booked twice, whichever run or source brings it again.

Connection: ``vexora_warehouse`` (a common-sql database where the ``payout_ledger`` table is kept).
Set ``VEXORA_EXAMPLE_MERCHANT`` to your merchant number (the ``vexora`` connection's login).
"""

from __future__ import annotations

import logging
import os
from contextlib import closing
from typing import Any

import pendulum
from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.sdk import DAG, BaseHook, Param, task

from vexora_provider.assets import payouts_asset, settlements_for_run

log = logging.getLogger(__name__)

MERCHANT_NO = os.environ.get("VEXORA_EXAMPLE_MERCHANT", "3060414594")
BOOKED_STATES = ("success", "partial", "failed")

payouts = payouts_asset(MERCHANT_NO)

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS payout_ledger (
    trade_no VARCHAR(64) PRIMARY KEY,
    state VARCHAR(16) NOT NULL,
    status_code VARCHAR(16),
    amount VARCHAR(32),
    success_time VARCHAR(40),
    source VARCHAR(16) NOT NULL
)
"""

with DAG(
    dag_id="example_vexora_settlement_events",
    description="Book each settled Vexora payout once, as settlements arrive",
    schedule=[payouts],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"warehouse_conn_id": Param("vexora_warehouse", type="string")},
    tags=["vexora", "example"],
) as dag:
    # The asset is also an inlet, so the task can read the settlements that arrived after its
    # run was triggered (see settlements_for_run).
    @task(inlets=[payouts])
    def book_settled_payouts(**context: Any) -> list[str]:
        """Insert each final settlement into ``payout_ledger``; return the trade numbers seen."""
        settlements = settlements_for_run(context, payouts)
        final = [s for s in settlements if s["state"] in BOOKED_STATES]
        for s in settlements:
            if s["state"] not in BOOKED_STATES:
                # An undocumented status code: a human decides, nothing is booked.
                log.warning("payout %s has undocumented status %s", s["trade_no"], s["status_code"])
        hook = BaseHook.get_hook(context["params"]["warehouse_conn_id"])
        assert isinstance(hook, DbApiHook)
        insert = (
            "INSERT INTO payout_ledger (trade_no, state, status_code, amount, success_time, source) "
            f"VALUES ({', '.join([hook.placeholder] * 6)}) ON CONFLICT (trade_no) DO NOTHING"
        )
        # A sync's event only carries the trade and its state: amount and time stay NULL (the
        # status table it wrote has them).
        rows = [
            (s["trade_no"], s["state"], s["status_code"], s["amount"], s["success_time"], s["source"])
            for s in final
        ]
        with closing(hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(LEDGER_DDL)
            if rows:
                cur.executemany(insert, rows)
            conn.commit()
        log.info("booked %d settled payouts (%d announced)", len(final), len(settlements))
        return [s["trade_no"] for s in settlements]

    book_settled_payouts()
