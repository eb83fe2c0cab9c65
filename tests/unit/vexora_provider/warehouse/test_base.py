"""The writer base: transactions and their retries, driver messages, value checks, tables."""

from __future__ import annotations

import re
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.unit.vexora_provider.operators._fakes import MERCHANT, status
from tests.unit.vexora_provider.warehouse.support import NOW, FakeSqliteHook, sqlite_writer
from vexora_provider.warehouse import (
    MySqlWriter,
    PostgresWriter,
    SqliteWriter,
    TableName,
    UnstorableValueError,
    WarehouseDataError,
    WarehouseError,
    status_row,
)
from vexora_provider.warehouse.failures import CONFLICT_ATTEMPTS


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vexora_provider.warehouse.base.backoff", lambda attempt: 0.0)


class TestRun:
    def test_a_conflict_is_retried_and_counted(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        tries: list[int] = []

        def work(cur: Any) -> str:
            tries.append(1)
            if len(tries) < 3:
                raise sqlite3.OperationalError("database is locked")
            return "done"

        assert writer._run("writing batch 1", work) == "done"
        assert writer.conflict_retries == 2

    def test_a_conflict_that_never_ends_fails_clearly(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")

        def work(cur: Any) -> None:
            raise sqlite3.OperationalError("database is locked")

        with pytest.raises(
            WarehouseError,
            match=f"database is locked \\(still conflicting after {CONFLICT_ATTEMPTS} tries\\)",
        ):
            writer._run("writing batch 1", work)
        assert writer.conflict_retries == CONFLICT_ATTEMPTS - 1

    def test_data_errors_are_told_apart(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        with pytest.raises(WarehouseDataError, match="IntegrityError"):
            writer._run("writing batch 1", lambda cur: cur.execute("INSERT INTO st (trade_no) VALUES (NULL)"))
        with pytest.raises(WarehouseError) as info:
            writer._run("writing batch 1", lambda cur: cur.execute("SELECT * FROM nowhere"))
        assert not isinstance(info.value, WarehouseDataError)

    def test_an_unreachable_database_fails_the_task_clearly(self) -> None:
        class Unreachable:
            def get_conn(self) -> Any:
                raise type("OperationalError", (Exception,), {})('connection to "127.0.0.1" port 1 refused')

        writer = PostgresWriter(Unreachable(), TableName.parse("st"))  # type: ignore[arg-type]
        expected = 'creating the tables on st (postgresql) failed: OperationalError: connection to "…" port 1'
        with pytest.raises(WarehouseError, match=re.escape(expected)):
            writer.prepare_tables(create=True)

    def test_failure_is_wrapped_and_rolled_back(self, tmp_path: Path) -> None:
        writer = SqliteWriter(FakeSqliteHook(tmp_path / "w.db"), TableName.parse("st"))  # type: ignore[arg-type]
        with pytest.raises(WarehouseError, match=r"writing batch 7 \(0 rows, 0 errors\) on st \(sqlite\)"):
            writer._run("writing batch 7 (0 rows, 0 errors)", lambda cur: cur.execute("SELECT * FROM st"))
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
        writer = sqlite_writer(tmp_path / "w.db", "wh.st", create=False)

        def fail(cur: Any) -> None:
            raise RuntimeError(driver_message)

        with pytest.raises(WarehouseError) as info:
            writer._run("writing batch 1", fail)
        assert str(info.value) == f"writing batch 1 on wh.st (sqlite) failed: RuntimeError: {expected}"
        assert "SECRET" not in str(info.value)

    def test_postgres_primary_message_preferred(self, tmp_path: Path) -> None:
        error = RuntimeError("full text\nDETAIL: Key (trade_no)=(SECRET) already exists")
        error.diag = mock.Mock(message_primary='duplicate key value violates unique constraint "st_pkey"')  # type: ignore[attr-defined]
        writer = sqlite_writer(tmp_path / "w.db", create=False)
        with pytest.raises(WarehouseError, match=r'unique constraint "…"$'):
            writer._run("writing batch 1", lambda cur: (_ for _ in ()).throw(error))

    def test_an_encoding_error_does_not_quote_the_text(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db", create=False)
        error = UnicodeEncodeError("utf-8", "SECRET\ud800", 6, 7, "surrogates not allowed")
        with pytest.raises(WarehouseDataError) as info:
            writer._run("writing batch 1", lambda cur: (_ for _ in ()).throw(error))
        assert str(info.value).endswith("UnicodeEncodeError: surrogates not allowed (utf-8)")


class TestAdaptStatus:
    def row(self, **changes: Any) -> Any:
        return status_row(MERCHANT, status("A"), NOW)._replace(**changes)

    @pytest.mark.parametrize("field", ["platform_trade_no", "status_code", "message", "raw"])
    def test_nul_refused_where_the_database_cannot_hold_it(self, field: str) -> None:
        row = self.row(**{field: "a\x00b"})
        MySqlWriter(mock.Mock(), TableName.parse("t")).adapt_status(row)
        with pytest.raises(UnstorableValueError, match=f"^{field}: contains NUL"):
            PostgresWriter(mock.Mock(), TableName.parse("t")).adapt_status(row)

    @pytest.mark.parametrize("field", ["trade_no", "message", "state"])
    def test_lone_surrogates_refused_everywhere(self, tmp_path: Path, field: str) -> None:
        writer = sqlite_writer(tmp_path / "w.db", create=False)
        with pytest.raises(UnstorableValueError, match=f"^{field}: contains a lone surrogate"):
            writer.adapt_status(self.row(**{field: "x\udfff"}))

    def test_amounts_checked_against_the_live_column(self) -> None:
        writer = MySqlWriter(mock.Mock(), TableName.parse("t"))
        writer.adapt_status(self.row(amount=Decimal("0.00004999")))
        writer.amounts["amount"] = writer.unconstrained_numeric
        with pytest.raises(
            UnstorableValueError, match=r"amount: amount 0.00004999 not representable in DECIMAL\(10,0\)"
        ):
            writer.adapt_status(self.row(amount=Decimal("0.00004999")))

    def test_key_length(self) -> None:
        writer = MySqlWriter(mock.Mock(), TableName.parse("t"))
        with pytest.raises(UnstorableValueError, match="trade_no: longer than the key's 255 characters"):
            writer.adapt_status(self.row(trade_no="K" * 256))

    @pytest.mark.parametrize(
        ("writer_class", "trade_no", "storable"),
        [
            (PostgresWriter, "A\x00", False),
            (MySqlWriter, "A\x00", True),
            (MySqlWriter, "K" * 256, False),
            (SqliteWriter, "X\ud800", False),
            (SqliteWriter, ["not", "text"], False),
            (SqliteWriter, "ok", True),
        ],
    )
    def test_storable_key(self, writer_class: type, trade_no: object, storable: bool) -> None:
        assert writer_class(mock.Mock(), TableName.parse("t")).storable_key(trade_no) is storable


class TestTables:
    def test_sqlite_amount_affinity_read_from_the_table(self, tmp_path: Path) -> None:
        with sqlite3.connect(tmp_path / "w.db") as conn:
            conn.execute("CREATE TABLE st (amount NUMERIC, order_amount TEXT, pay_amount)")
        writer = sqlite_writer(tmp_path / "w.db", create=False)
        writer.prepare_tables(create=False)
        assert writer.amounts["amount"].binary_float
        assert not writer.amounts["order_amount"].binary_float
        assert not writer.amounts["pay_amount"].binary_float
