"""The operator against a real PostgreSQL server: COPY fast path, equality with SQLite, failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg2  # type: ignore[import-untyped]
import pytest

from tests.integration.operator_support import (
    drop_tables,
    dsn_connection,
    run_sql,
    run_sync,
    select,
    simulator,
    table_rows,
    unique_table,
    vexora_connection,
)
from vexora_provider.testing.faults import FaultRule
from vexora_provider.warehouse import PostgresWriter, Reversal, TableName, status_row

pytestmark = pytest.mark.integration


@pytest.fixture
def pg(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AIRFLOW_CONN_WH_PG", dsn_connection(postgres_dsn, "postgres"))
    table = unique_table()
    yield table
    drop_tables("wh_pg", table)


class TestPostgresTarget:
    def test_same_rows_as_sqlite_and_rerun_idempotent(
        self, pg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_WH_LITE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")})
        )
        sim, trades = simulator(1200)
        with vexora_connection(sim) as vexora:
            summary = run_sync(
                vexora, "wh_pg", pg, trades + trades[:50], batch_size=250, only_non_terminal=False
            )
            run_sync(vexora, "wh_lite", pg, trades, batch_size=250)
            rows = table_rows("wh_pg", pg)
            assert (summary["loaded"], summary["duplicates"]) == (1200, 50)
            assert len(rows) == 1200
            assert rows == table_rows("wh_lite", pg)
            run_sync(vexora, "wh_pg", pg, trades, batch_size=100, only_non_terminal=False)
            assert table_rows("wh_pg", pg) == rows
        types = dict(
            select(
                "wh_pg",
                f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{pg}'",
            )
        )
        assert types["amount"] == "numeric"
        assert types["success_time"] == "timestamp with time zone"

    def test_failure_recorded_without_overwriting(self, pg: str) -> None:
        sim, trades = simulator(40)
        target = next(t for t in trades if sim.payout(t).final_code is None)  # stays pending
        with vexora_connection(sim, max_attempts=2) as vexora:
            run_sync(vexora, "wh_pg", pg, trades)
            before = [r for r in table_rows("wh_pg", pg) if r[1] == target]
            sim.faults.add(FaultRule("http_500", trade_no=target))
            summary = run_sync(vexora, "wh_pg", pg, trades, only_non_terminal=False, max_failed_ratio=0.5)
            assert summary["failed"] == 1
            assert [r for r in table_rows("wh_pg", pg) if r[1] == target] == before
            errors = select("wh_pg", f'SELECT trade_no, error_type, attempts FROM "{pg}_errors"')
            assert errors == [(target, "VexoraHTTPError", 2)]
            sim.clear_faults()
            run_sync(vexora, "wh_pg", pg, [target], only_non_terminal=False)
            assert select("wh_pg", f'SELECT count(*) FROM "{pg}_errors"') == [(0,)]

    def test_schema_qualified_table(self, pg: str) -> None:
        sim, trades = simulator(10)
        with vexora_connection(sim) as vexora:
            run_sync(vexora, "wh_pg", f"public.{pg}", trades)
        assert select("wh_pg", f'SELECT count(*) FROM public."{pg}"') == [(10,)]

    def test_psycopg2_copy_path(self, postgres_dsn: str, pg: str) -> None:
        from tests.unit.vexora_provider.operators._fakes import MERCHANT, status

        class Psycopg2Hook:
            def get_conn(self) -> object:
                return psycopg2.connect(postgres_dsn)

            def set_autocommit(self, conn: object, autocommit: bool) -> None:
                conn.autocommit = autocommit  # type: ignore[attr-defined]

        from datetime import UTC, datetime

        writer = PostgresWriter(Psycopg2Hook(), TableName.parse(pg))  # type: ignore[arg-type]
        writer.create_tables()
        row = status_row(MERCHANT, status("Q1", amount="12.5"), datetime.now(UTC))
        odd = row._replace(message="")  # an empty message must stay empty, not NULL
        writer.write_batch([row, odd], [], batch=1)
        later = status_row(MERCHANT, status("Q1", "failed", amount="12.5"), datetime.now(UTC))
        outcome = writer.write_batch([later], [], batch=2)  # psycopg2 hands notices over differently
        writer.close()
        assert outcome.reversals == [Reversal("Q1", "success", "failed")]
        assert select("wh_pg", f'SELECT trade_no, message, amount FROM "{pg}"') == [
            ("Q1", "failed", row.amount)
        ]

    def test_own_table_with_other_types_gets_text_copy(self, pg: str) -> None:
        ddl = (
            f'CREATE TABLE "{pg}" (merchant_no varchar(32), trade_no varchar(64), platform_trade_no text, '
            "status_code text, state text, message text, amount numeric(14,2), order_amount numeric, "
            "pay_amount numeric, success_time timestamp, fetched_at timestamp, raw jsonb, "
            "note text DEFAULT 'mine', PRIMARY KEY (merchant_no, trade_no))"
        )
        run_sql("wh_pg", ddl)
        run_sql(
            "wh_pg",
            f'CREATE TABLE "{pg}_errors" (merchant_no text, trade_no text, error_type text, '
            "error text, attempts int, failed_at timestamptz, PRIMARY KEY (merchant_no, trade_no))",
        )
        sim, trades = simulator(30)
        with vexora_connection(sim) as vexora:
            summary = run_sync(vexora, "wh_pg", pg, trades, create_table=False)
        assert summary["loaded"] == 30
        assert select("wh_pg", f'SELECT count(*), min(note) FROM "{pg}"') == [(30, "mine")]
