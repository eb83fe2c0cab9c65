from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.unit.vexora_provider.operators._fakes import MERCHANT, status
from vexora_provider.warehouse import (
    GenericWriter,
    MySqlWriter,
    PostgresWriter,
    SqliteWriter,
    TableName,
    WarehouseError,
    dedupe_latest,
    error_row,
    status_row,
    writer_for,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeSqliteHook:
    """The two things a writer asks of a DbApiHook, over a real SQLite file."""

    placeholder = "?"
    dialect_name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def get_conn(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def set_autocommit(self, conn: Any, autocommit: bool) -> None:
        conn.autocommit = autocommit  # sqlite3 has no such attribute before 3.12: writers cope


class CountingCursor:
    """Wraps a cursor and counts the statements sent per batch."""

    def __init__(self, inner: Any, calls: list[str]) -> None:
        self.inner, self.calls = inner, calls

    def execute(self, sql: str, params: Any = ()) -> Any:
        self.calls.append(sql.split()[0])
        return self.inner.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        self.calls.append(sql.split()[0] + "*")
        return self.inner.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def rows_for(n: int, state: str = "success", start: int = 0, writer: Any = None) -> list[tuple[Any, ...]]:
    """Status rows, converted for ``writer`` when given (as the operator does on arrival)."""
    rows = [status_row(MERCHANT, status(f"T{i:06d}", state), NOW) for i in range(start, start + n)]
    return [writer.adapt_status(r) for r in rows] if writer else rows


def load(writer: Any, n: int) -> list[str]:
    calls: list[str] = []
    conn = writer.conn
    real_cursor = conn.cursor
    with mock.patch.object(writer, "_conn", mock.Mock(wraps=conn)) as wrapped:
        wrapped.cursor = lambda: CountingCursor(real_cursor(), calls)
        writer.write_batch(rows_for(n, writer=writer), [], batch=1)
    return calls


class TestTableName:
    @pytest.mark.parametrize(
        ("value", "schema", "name"), [("t", None, "t"), ("s.t", "s", "t"), ("_A9.b_", "_A9", "b_")]
    )
    def test_parse(self, value: str, schema: str | None, name: str) -> None:
        assert TableName.parse(value) == TableName(schema, name)

    @pytest.mark.parametrize("value", ["", "t;", "a.b.c", "9t", "t-x", "t x", "ß", None, 3, "x" * 57])
    def test_refused(self, value: object) -> None:
        with pytest.raises(ValueError, match="not a plain"):
            TableName.parse(value)

    def test_quoting_and_errors_table(self) -> None:
        name = TableName.parse("wh.payouts")
        assert name.quoted('"') == '"wh"."payouts"'
        assert name.quoted("`") == "`wh`.`payouts`"
        assert name.errors.quoted('"') == '"wh"."payouts_errors"'
        assert str(name) == "wh.payouts"


class TestStatusRow:
    def test_amounts_scaled_time_in_utc(self) -> None:
        row = status_row(MERCHANT, status("A", amount="1.23456"), NOW)
        assert row[6] == Decimal("1.2346")
        assert row[9] == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
        assert row[9].utcoffset() == timedelta(0)
        assert row[11].startswith('{"tradeNo":"A"')

    def test_amount_that_does_not_fit_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"numeric\(20,4\)"):
            status_row(MERCHANT, status("A", amount="10000000000000000"), NOW)

    def test_error_row_truncates(self) -> None:
        row = error_row(MERCHANT, "X" * 400, error_type="E", error="e" * 5000, attempts=2, failed_at=NOW)
        assert len(row[1]) == 255
        assert len(row[3]) == 1000

    def test_dedupe_latest_wins(self) -> None:
        a1, b, a2 = ("m", "A", 1), ("m", "B", 2), ("m", "A", 3)
        assert sorted(dedupe_latest([a1, b, a2])) == [a2, b]
        rows = [a1, b]
        assert dedupe_latest(rows) is rows  # nothing to drop: no copy


class TestSqliteWriter:
    def test_upsert_is_idempotent_and_exact(self, tmp_path: Path) -> None:
        writer = SqliteWriter(FakeSqliteHook(tmp_path / "w.db"), TableName.parse("st"))  # type: ignore[arg-type]
        writer.create_tables()
        writer.create_tables()  # IF NOT EXISTS
        latest = writer.adapt_status(status_row(MERCHANT, status("T000001", "failed", "0.1"), NOW))
        batch = [*rows_for(50, writer=writer), latest]
        writer.write_batch(batch, [], batch=1)
        first = writer.conn.execute("SELECT * FROM st ORDER BY trade_no").fetchall()
        writer.write_batch(batch, [], batch=2)
        assert writer.conn.execute("SELECT * FROM st ORDER BY trade_no").fetchall() == first
        assert len(first) == 50
        dup = next(r for r in first if r[1] == "T000001")
        assert (dup[4], Decimal(dup[6])) == ("failed", Decimal("0.1"))  # latest in the batch won
        writer.close()

    def test_statements_per_batch_do_not_grow_with_rows(self, tmp_path: Path) -> None:
        writer = SqliteWriter(FakeSqliteHook(tmp_path / "w.db"), TableName.parse("st"))  # type: ignore[arg-type]
        writer.create_tables()
        # One executemany for the rows, then a look at the errors table: empty, nothing to clear.
        assert load(writer, 10) == load(writer, 3000) == ["BEGIN", "INSERT*", "SELECT"]
        err = error_row(MERCHANT, "X", error_type="E", error="e", attempts=1, failed_at=NOW)
        writer.write_batch([], [writer.adapt_error(err)], batch=2)
        # With error rows present they are cleared by key, 500 keys a statement.
        assert load(writer, 3000) == ["BEGIN", "INSERT*", "SELECT"] + ["DELETE"] * 6

    def test_terminal_lookup(self, tmp_path: Path) -> None:
        writer = SqliteWriter(FakeSqliteHook(tmp_path / "w.db"), TableName.parse("st"))  # type: ignore[arg-type]
        writer.create_tables()
        writer.write_batch(
            rows_for(700, "success", 0, writer)
            + rows_for(5, "pending", 700, writer)
            + rows_for(5, "unknown", 705, writer),
            [],
            batch=1,
        )
        asked = [f"T{i:06d}" for i in range(0, 720)]
        terminal = writer.terminal_trade_nos(MERCHANT, asked)
        assert terminal == {f"T{i:06d}" for i in range(700)}
        assert writer.terminal_trade_nos("other-merchant", asked) == set()

    def test_errors_cleared_on_load_and_never_touch_status(self, tmp_path: Path) -> None:
        writer = SqliteWriter(FakeSqliteHook(tmp_path / "w.db"), TableName.parse("st"))  # type: ignore[arg-type]
        writer.create_tables()
        writer.write_batch(rows_for(1, "pending", writer=writer), [], batch=1)
        err = error_row(MERCHANT, "T000000", error_type="E", error="boom", attempts=4, failed_at=NOW)
        writer.write_batch([], [writer.adapt_error(err)], batch=2)
        writer.write_batch([], [writer.adapt_error(err)], batch=3)  # failing twice keeps one row
        assert writer.conn.execute("SELECT state FROM st").fetchall() == [("pending",)]
        assert writer.conn.execute("SELECT trade_no, attempts FROM st_errors").fetchall() == [("T000000", 4)]
        writer.write_batch(rows_for(1, "success", writer=writer), [], batch=4)
        assert writer.conn.execute("SELECT count(*) FROM st_errors").fetchone() == (0,)

    def test_failure_is_wrapped_and_rolled_back(self, tmp_path: Path) -> None:
        writer = SqliteWriter(FakeSqliteHook(tmp_path / "w.db"), TableName.parse("st"))  # type: ignore[arg-type]
        with pytest.raises(WarehouseError, match=r"writing batch 7 \(2 rows, 0 errors\) on st \(sqlite\)"):
            writer.write_batch(rows_for(2, writer=writer), [], batch=7)
        writer.conn.execute("SELECT 1")  # the connection is still usable


class TestClose:
    def test_close_on_a_broken_connection_does_not_raise(self) -> None:
        writer = SqliteWriter(mock.Mock(), TableName.parse("st"))
        conn = mock.Mock()
        conn.rollback.side_effect = sqlite3.OperationalError("disk I/O error")
        conn.close.side_effect = sqlite3.ProgrammingError("closed")
        writer._conn = conn
        writer.close()
        conn.close.assert_called_once_with()
        assert writer._conn is None


class TestDriverMessages:
    """A failed statement's message names our table and columns, never the values it carried."""

    @pytest.mark.parametrize(
        ("driver_message", "expected"),
        [
            (
                "1062 (23000): Duplicate entry '3060414594-SECRET_TRADE' for key 'PRIMARY'",
                "1062 (23000): Duplicate entry '…' for key 'PRIMARY'",
            ),
            (
                "1366 (22007): Incorrect decimal value: 'SECRET' for column `wh`.`st`.`amount` at row 1",
                "1366 (22007): Incorrect decimal value: '…' for column `wh`.`st`.`amount` at row 1",
            ),
            ("Table 'wh.st_errors' doesn't exist", "Table 'wh.st_errors' doesn't exist"),
            (
                'invalid input syntax for type numeric: "SECRET"\nDETAIL: Key (trade_no)=(SECRET)',
                'invalid input syntax for type numeric: "…"',
            ),
            (
                'column "amount" of relation "st" does not exist',
                'column "amount" of relation "st" does not exist',
            ),
        ],
    )
    def test_values_masked_identifiers_kept(self, tmp_path: Path, driver_message: str, expected: str) -> None:
        writer = SqliteWriter(FakeSqliteHook(tmp_path / "w.db"), TableName.parse("wh.st"))  # type: ignore[arg-type]

        def fail(cur: Any) -> None:
            raise RuntimeError(driver_message)

        with pytest.raises(WarehouseError) as info:
            writer._run("writing batch 1", fail)
        assert str(info.value) == f"writing batch 1 on wh.st (sqlite) failed: RuntimeError: {expected}"
        assert "SECRET" not in str(info.value)

    def test_postgres_primary_message_preferred(self, tmp_path: Path) -> None:
        error = RuntimeError("full text\nDETAIL: Key (trade_no)=(SECRET) already exists")
        error.diag = mock.Mock(message_primary='duplicate key value violates unique constraint "st_pkey"')  # type: ignore[attr-defined]
        writer = SqliteWriter(FakeSqliteHook(tmp_path / "w.db"), TableName.parse("st"))  # type: ignore[arg-type]
        with pytest.raises(WarehouseError, match=r'unique constraint "…"$'):
            writer._run("writing batch 1", lambda cur: (_ for _ in ()).throw(error))


class TestGenericWriter:
    def test_delete_then_insert_on_sqlite(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # The generic path passes Decimal, as DB-API drivers expect; sqlite3 needs to be taught it.
        adapters: dict[Any, Any] = sqlite3.adapters
        monkeypatch.setitem(adapters, (Decimal, sqlite3.PrepareProtocol), str)
        writer = GenericWriter(FakeSqliteHook(tmp_path / "g.db"), TableName.parse("gt"))  # type: ignore[arg-type]
        writer.create_tables()
        for attempt in range(2):
            writer.write_batch(rows_for(1200, writer=writer), [], batch=attempt)
        assert writer.conn.execute("SELECT count(*) FROM gt").fetchone() == (1200,)
        calls = load(writer, 1200)
        # 3 chunked key deletes per table (500 keys per IN list), 1 executemany insert.
        assert calls == ["DELETE"] * 6 + ["INSERT*"]
        stored = writer.conn.execute("SELECT success_time, fetched_at FROM gt LIMIT 1").fetchone()
        assert stored == ("2026-01-02 09:00:00", "2026-03-01 12:00:00")  # naive UTC

    def test_quotes_with_double_quotes_and_uses_hook_placeholder(self) -> None:
        hook = mock.Mock(placeholder="?")
        writer = GenericWriter(hook, TableName.parse("s.t"))
        assert writer.ddl()[0].startswith('CREATE TABLE IF NOT EXISTS "s"."t" ("merchant_no" VARCHAR(255)')
        assert (
            writer._insert_sql(writer.status_sql, ["a", "b"])
            == 'INSERT INTO "s"."t" ("a", "b") VALUES (?, ?)'
        )


class TestPostgresWriter:
    def test_copy_into_stage_then_one_upsert(self) -> None:
        cur = mock.MagicMock()
        writer = PostgresWriter(mock.Mock(), TableName.parse("s.t"))
        err = error_row(MERCHANT, "E1", error_type="E", error="x", attempts=1, failed_at=NOW)
        writer._write(cur, rows_for(3000), [err])
        statements = [c.args[0].split()[0] for c in cur.execute.call_args_list]
        # The first batch also reads the stage's column types, once.
        assert statements == ["CREATE", "SELECT", "INSERT", "DELETE", "INSERT"]
        cur.execute.reset_mock()
        writer._write(cur, rows_for(10), [])
        assert [c.args[0].split()[0] for c in cur.execute.call_args_list] == ["CREATE", "INSERT", "DELETE"]
        assert cur.copy.call_args_list[0].args[0].startswith("COPY _vexora_stage (")
        assert not cur.copy.call_args.args[0].endswith("(FORMAT BINARY)")  # mock description: not ours
        upsert = cur.execute.call_args_list[1].args[0]
        assert 'INSERT INTO "s"."t"' in upsert
        assert 'ON CONFLICT ("merchant_no", "trade_no") DO UPDATE' in upsert
        assert cur.copy.return_value.__enter__.return_value.write_row.call_count == 3010

    def test_psycopg2_copy_expert_csv(self) -> None:
        cur = mock.Mock(spec=["execute", "copy_expert"])
        writer = PostgresWriter(mock.Mock(), TableName.parse("t"))
        writer._copy(cur, "COPY x FROM STDIN", [("a", None, "", Decimal("1.5"), NOW)])
        statement, buffer = cur.copy_expert.call_args.args
        assert statement.endswith("WITH (FORMAT csv)")
        assert buffer.getvalue() == '"a",,"","1.5","2026-03-01T12:00:00+00:00"\n'

    def test_timestamptz_and_numeric(self) -> None:
        ddl = PostgresWriter(mock.Mock(), TableName.parse("t")).ddl()[0]
        assert '"amount" NUMERIC(20,4)' in ddl
        assert '"success_time" TIMESTAMPTZ' in ddl


class TestMySqlWriter:
    def test_backticks_and_on_duplicate_key(self) -> None:
        cur = mock.MagicMock()
        writer = MySqlWriter(mock.Mock(), TableName.parse("db.t"))
        writer._write(cur, rows_for(2), [])
        sql = cur.executemany.call_args_list[0].args[0]
        assert sql.startswith("INSERT INTO `db`.`t` (`merchant_no`")
        assert "ON DUPLICATE KEY UPDATE `platform_trade_no` = VALUES(`platform_trade_no`)" in sql
        assert "ENGINE=InnoDB" in writer.ddl()[0]
        assert "DECIMAL(20,4)" in writer.ddl()[0]

    def test_naive_utc_datetimes(self) -> None:
        writer = MySqlWriter(mock.Mock(), TableName.parse("t"))
        aware = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=7)))
        row = writer.adapt_status((*rows_for(1)[0][:9], aware, NOW, "{}"))
        assert row[9] == datetime(2026, 1, 1, 5)
        assert row[10] == datetime(2026, 3, 1, 12)


class TestWriterFor:
    @pytest.mark.parametrize(
        ("dialect", "kind"),
        [
            ("sqlite", SqliteWriter),
            ("postgresql", PostgresWriter),
            ("mysql", MySqlWriter),
            ("mssql", GenericWriter),
            ("snowflake", GenericWriter),
        ],
    )
    def test_by_dialect(self, dialect: str, kind: type) -> None:
        assert type(writer_for(mock.Mock(dialect_name=dialect), TableName.parse("t"))) is kind

    def test_forced_generic(self) -> None:
        writer = writer_for(mock.Mock(dialect_name="mysql"), TableName.parse("t"), dialect="generic")
        assert type(writer) is GenericWriter
