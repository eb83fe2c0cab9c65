"""One batch, one transaction: the steps, the outcome, and the split that isolates a bad row."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.vexora_provider.operators._fakes import MERCHANT
from tests.unit.vexora_provider.warehouse.support import NOW, rows_for, sqlite_writer, statements
from vexora_provider.warehouse import WarehouseDataError, WarehouseError, error_row
from vexora_provider.warehouse.sqlite import SqliteWriter


def failure(writer: SqliteWriter, trade_no: str, seconds: int = 0) -> object:
    row = error_row(
        MERCHANT,
        trade_no,
        error_type="E",
        error="boom",
        attempts=4,
        failed_at=NOW + timedelta(seconds=seconds),
    )
    return writer.adapt_error(row)


def poisoned(path: Path) -> SqliteWriter:
    """A writer on a table of the user's own with a rule no check of ours knows about."""
    writer = sqlite_writer(path, create=False)
    status_ddl, errors_ddl = writer.ddl()
    with sqlite3.connect(path) as conn:
        conn.execute(status_ddl.replace(", PRIMARY KEY", ", CHECK (\"message\" <> 'poison'), PRIMARY KEY"))
        conn.execute(errors_ddl)
    return writer


class TestWarehouseWriter:
    def test_statements_per_batch_do_not_grow_with_rows(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        # One executemany for the rows, then a look at the errors table: empty, nothing to clear.
        assert statements(writer, 10) == statements(writer, 3000) == ["BEGIN", "INSERT*", "SELECT"]
        writer.write_batch([], [failure(writer, "X")], batch=2)  # type: ignore[list-item]
        # With error rows present, the obsolete ones are cleared by key, 500 keys a statement.
        assert statements(writer, 3000) == ["BEGIN", "INSERT*", "SELECT"] + ["DELETE"] * 6

    def test_outcome(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        writer.write_batch(rows_for(2, "success", writer=writer), [], batch=1)
        errors = [failure(writer, "T000000", 5), failure(writer, "N1", 5)]
        outcome = writer.write_batch(rows_for(3, "pending", 5, writer), errors, batch=2)  # type: ignore[arg-type]
        assert (outcome.loaded, dict(outcome.by_state)) == (3, {"pending": 3})
        assert (outcome.failed, outcome.superseded) == (["N1"], 1)  # T000000 is final: not recorded

    def test_non_final_lookup(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        rows = [
            *rows_for(3, "success", 0, writer),
            *rows_for(2, "pending", 3, writer),
            *rows_for(1, "unknown", 5, writer),
            *rows_for(1, "failed", 6, writer),
        ]
        writer.write_batch(rows, [], batch=1)
        assert sorted(writer.non_final_trade_nos(MERCHANT)) == ["T000003", "T000004", "T000005"]
        assert writer.non_final_trade_nos("other-merchant") == []

    def test_terminal_lookup_clears_their_stale_error_rows(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        writer.write_batch(
            rows_for(700, "success", 0, writer)
            + rows_for(5, "pending", 700, writer)
            + rows_for(5, "unknown", 705, writer),
            [],
            batch=1,
        )
        with sqlite3.connect(tmp_path / "w.db") as conn:  # what a run killed before its sweep leaves
            conn.execute(
                "INSERT INTO st_errors VALUES (?, 'T000001', 'E', 'e', 1, '2026-01-01')", (MERCHANT,)
            )
            conn.execute(
                "INSERT INTO st_errors VALUES (?, 'T000701', 'E', 'e', 1, '2099-01-01')", (MERCHANT,)
            )
        asked = [f"T{i:06d}" for i in range(0, 720)]
        assert writer.terminal_trade_nos(MERCHANT, asked) == {f"T{i:06d}" for i in range(700)}
        assert writer.terminal_trade_nos("other-merchant", asked) == set()
        remaining = writer.conn.execute("SELECT trade_no FROM st_errors").fetchall()
        assert remaining == [("T000701",)]

    def test_a_refused_row_is_isolated_and_recorded(self, tmp_path: Path) -> None:
        writer = poisoned(tmp_path / "w.db")
        rows = [
            r._replace(message="poison") if r.trade_no == "T000013" else r
            for r in rows_for(40, writer=writer)
        ]
        outcome = writer.write_batch(rows, [], batch=1)
        assert (outcome.loaded, outcome.unstorable, outcome.failed) == (39, 1, ["T000013"])
        (error,) = writer.conn.execute("SELECT trade_no, error_type, error FROM st_errors").fetchall()
        assert error[:2] == ("T000013", "UnstorableValue")
        assert error[2].startswith("the database refused the row: IntegrityError: CHECK constraint failed")
        assert writer.conn.execute("SELECT count(*) FROM st").fetchone() == (39,)

    def test_a_table_that_refuses_every_row_fails_the_batch(self, tmp_path: Path) -> None:
        writer = poisoned(tmp_path / "w.db")
        rows = [r._replace(message="poison") for r in rows_for(4, writer=writer)]
        with pytest.raises(
            WarehouseError, match=r"the database refused every row .*check the table's column types"
        ):
            writer.write_batch(rows, [], batch=3)

    def test_an_error_row_of_ours_refused_is_not_a_trade_problem(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        with sqlite3.connect(tmp_path / "w.db") as conn:
            conn.execute("DROP TABLE st_errors")
            conn.execute(
                "CREATE TABLE st_errors (merchant_no, trade_no, error_type, error, attempts, "
                "failed_at CHECK (0), PRIMARY KEY (merchant_no, trade_no))"
            )
        with pytest.raises(WarehouseDataError, match="CHECK constraint failed"):
            writer.write_batch([], [failure(writer, "X")], batch=1)  # type: ignore[list-item]
