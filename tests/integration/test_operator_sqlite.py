"""The operator end to end: simulator on a loopback socket → SQLite (the embedded default)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.integration.operator_support import (
    run_sync,
    select,
    simulator,
    table_rows,
    vexora_connection,
)
from vexora_provider.exceptions import VexoraAuthError
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_conn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WH_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


class TestSqliteTarget:
    def test_sync_rerun_and_duplicates(self, sqlite_conn: Path) -> None:
        sim, trades = simulator(1500)
        with vexora_connection(sim) as vexora:
            first = run_sync(vexora, "wh_sqlite", "payouts", trades, batch_size=200, concurrency=16)
            rows = table_rows("wh_sqlite", "payouts")
            assert (first["loaded"], first["failed"]) == (1500, 0)
            assert {r[4] for r in rows} == {"success", "partial", "pending", "failed", "unknown"}
            assert len(rows) == 1500

            # Rerun: terminal trades are skipped, the rest refreshed, the table is unchanged.
            second = run_sync(vexora, "wh_sqlite", "payouts", trades, batch_size=200)
            terminal = sum(first["by_state"].get(s, 0) for s in ("success", "partial", "failed"))
            assert second["skipped_terminal"] == terminal
            assert second["requested"] == 1500 - terminal
            assert table_rows("wh_sqlite", "payouts") == rows

            # Everything again, with every trade given twice: each fetched once, the same rows.
            calls = sim.calls(trades[0])
            third = run_sync(
                vexora, "wh_sqlite", "payouts", trades + trades, batch_size=5000, only_non_terminal=False
            )
            assert (third["total"], third["duplicates"], third["requested"]) == (3000, 1500, 1500)
            assert table_rows("wh_sqlite", "payouts") == rows
            assert sim.calls(trades[0]) == calls + 1

    def test_trade_nos_sql_selects_non_terminal(self, sqlite_conn: Path) -> None:
        sim, trades = simulator(300)
        with sqlite3.connect(sqlite_conn) as conn:
            conn.execute("CREATE TABLE orders (trade_no TEXT)")
            conn.executemany("INSERT INTO orders VALUES (?)", [(t,) for t in trades])
        query = (
            "SELECT o.trade_no FROM orders o LEFT JOIN vexora_payout_status s ON s.trade_no = o.trade_no "
            "WHERE s.trade_no IS NULL OR s.state NOT IN ('success', 'partial', 'failed')"
        )
        with vexora_connection(sim) as vexora:
            op = PayoutStatusToSqlOperator(
                task_id="s", vexora_conn_id=vexora, sql_conn_id="wh_sqlite", trade_nos_sql=query
            )
            op.hook = VexoraHook(vexora)
            first = op.execute({})
            op.hook = VexoraHook(vexora)
            second = op.execute({})
        assert first["requested"] == 300
        assert second["requested"] == first["by_state"].get("pending", 0) + first["by_state"].get(
            "unknown", 0
        )

    def test_wrong_secret_stops_the_sync_with_one_clear_error(self, sqlite_conn: Path) -> None:
        sim, trades = simulator(500)
        with vexora_connection(sim) as vexora:
            key = f"AIRFLOW_CONN_{vexora.upper()}"
            conn = json.loads(os.environ[key])
            conn["password"] = "not-the-secret-" + "x" * 17
            os.environ[key] = json.dumps(conn)

            with pytest.raises(VexoraAuthError, match=r"merchant number \(login\)"):
                run_sync(vexora, "wh_sqlite", "payouts", trades, concurrency=32)

        requests = sim.stats()["requests"]
        assert (requests.get("queryPayOutResult"), requests.get("queryBalance")) == (1, 1)
        # One error for the task, not one row per trade saying "sign error".
        assert select("wh_sqlite", "SELECT COUNT(*) FROM payouts_errors") == [(0,)]
        assert select("wh_sqlite", "SELECT COUNT(*) FROM payouts") == [(0,)]
