"""Every writer (each fast path, and the generic one) against the real databases, batch by batch."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.operator_support import Warehouse, db_hook, run_sql, unique_table
from tests.unit.vexora_provider.operators._fakes import MERCHANT, status
from vexora_provider.warehouse import (
    BatchOutcome,
    Reversal,
    TableName,
    UnstorableValueError,
    WarehouseError,
    WarehouseWriter,
    error_row,
    status_row,
    writer_for,
)
from vexora_provider.warehouse.schema import ColumnTypes, create_table_statements

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(params=["fast", "generic"])
def writer(
    request: pytest.FixtureRequest, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WarehouseWriter]:
    if request.param == "generic" and warehouse.dialect == "sqlite":
        # The generic path passes Decimal, as DB-API drivers expect; sqlite3 needs to be taught it.
        monkeypatch.setitem(sqlite3.adapters, (Decimal, sqlite3.PrepareProtocol), str)
    table = unique_table("w")
    made = writer_for(
        db_hook(warehouse.conn_id),
        TableName.parse(table),
        dialect="generic" if request.param == "generic" else None,
    )
    made.create_tables()
    yield made
    made.close()
    warehouse.drop(table)


def fresh(warehouse: Warehouse, prefix: str) -> tuple[str, TableName, WarehouseWriter]:
    """A new table name on ``warehouse`` and a writer for it (the tables are not created)."""
    table = unique_table(prefix)
    name = TableName.parse(table)
    return table, name, writer_for(db_hook(warehouse.conn_id), name)


def put(writer: WarehouseWriter, *rows: Any, errors: tuple[Any, ...] = ()) -> BatchOutcome:
    return writer.write_batch(
        [writer.adapt_status(r) for r in rows], [writer.adapt_error(e) for e in errors], batch=1
    )


def answer(trade_no: str, state: str, seconds: int, message: str | None = None) -> Any:
    row = status_row(MERCHANT, status(trade_no, state), at(seconds))
    return row._replace(message=message) if message else row


def failure(trade_no: str, seconds: int, text: str = "boom") -> Any:
    return error_row(MERCHANT, trade_no, error_type="E", error=text, attempts=1, failed_at=at(seconds))


def stored(writer: WarehouseWriter) -> dict[str, tuple[str, str]]:
    q = writer.quote
    cur = writer.conn.cursor()
    cur.execute(f"SELECT {q}trade_no{q}, {q}state{q}, {q}message{q} FROM {writer.status_sql}")
    rows = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
    writer.conn.commit()
    return rows


def errors(writer: WarehouseWriter) -> dict[str, str]:
    q = writer.quote
    cur = writer.conn.cursor()
    cur.execute(f"SELECT {q}trade_no{q}, {q}error{q} FROM {writer.errors_sql}")
    rows = {r[0]: r[1] for r in cur.fetchall()}
    writer.conn.commit()
    return rows


class TestOrderingRule:
    def test_later_fetch_wins_and_a_final_state_never_goes_back(self, writer: WarehouseWriter) -> None:
        put(writer, answer("A", "success", 2), answer("B", "pending", 2, "new"), answer("C", "pending", 2))
        put(writer, answer("A", "pending", 1), answer("B", "pending", 1, "old"), answer("C", "success", 1))
        put(writer, answer("D", "failed", 1), answer("D", "pending", 3))  # one batch, same trade
        assert stored(writer) == {
            "A": ("success", "success"),  # the older pending answer is ignored
            "B": ("pending", "new"),  # the later fetch wins
            "C": ("success", "success"),  # final beats non-final, even fetched earlier
            "D": ("failed", "failed"),
        }

    def test_rewriting_a_batch_changes_nothing(self, writer: WarehouseWriter) -> None:
        batch = [answer(f"R{i}", "pending", 1) for i in range(30)]
        put(writer, *batch)
        before = stored(writer)
        put(writer, *batch)
        assert stored(writer) == before

    def test_a_reversal_is_applied_and_reported(self, writer: WarehouseWriter) -> None:
        put(writer, answer("R", "success", 1))
        outcome = put(writer, answer("R", "failed", 2), answer("S", "failed", 2))
        assert outcome.reversals == [Reversal("R", "success", "failed")]
        assert put(writer, answer("R", "success", 1)).reversals == []  # older: ignored, no reversal
        assert stored(writer)["R"] == ("failed", "failed")


class TestErrorRows:
    def test_never_beside_a_final_or_newer_status(self, writer: WarehouseWriter) -> None:
        put(writer, answer("F", "success", 1), answer("P", "pending", 5))
        outcome = put(writer, errors=(failure("F", 9), failure("P", 4), failure("N", 4)))
        assert (sorted(outcome.failed), outcome.superseded) == (["N"], 2)
        assert set(errors(writer)) == {"N"}

    def test_later_failure_wins_and_a_status_clears_what_it_makes_obsolete(
        self, writer: WarehouseWriter
    ) -> None:
        put(writer, answer("P", "pending", 1))
        put(writer, errors=(failure("P", 5, "later"),))
        put(writer, errors=(failure("P", 3, "earlier"),))
        assert errors(writer) == {"P": "later"}
        put(writer, answer("P", "pending", 4))  # older than the failure: the error row stays
        assert errors(writer) == {"P": "later"}
        put(writer, answer("P", "pending", 6))
        assert errors(writer) == {}
        put(writer, errors=(failure("Q", 8),))
        put(writer, answer("Q", "failed", 2))  # final, even fetched before the failure
        assert errors(writer) == {}

    def test_a_trade_that_failed_and_loaded_in_one_batch(self, writer: WarehouseWriter) -> None:
        outcome = put(writer, answer("D", "success", 1), errors=(failure("D", 1),))
        assert (outcome.loaded, outcome.failed, outcome.superseded) == (1, [], 1)
        assert errors(writer) == {}


class TestIsolation:
    def test_a_row_the_database_refuses_costs_only_that_row(self, warehouse: Warehouse) -> None:
        table, _, writer = fresh(warehouse, "chk")
        q = writer.quote
        status_ddl, errors_ddl = writer.ddl()
        # A rule of the user's own table that no check of ours knows about.
        run_sql(
            warehouse.conn_id,
            status_ddl.replace(", PRIMARY KEY", f", CHECK ({q}message{q} <> 'poison'), PRIMARY KEY"),
        )
        run_sql(warehouse.conn_id, errors_ddl)
        try:
            writer.prepare_tables(create=False)
            rows = [answer(f"K{i:02d}", "success", 1, "poison" if i == 17 else "fine") for i in range(30)]
            outcome = put(writer, *rows)
            assert (outcome.loaded, outcome.unstorable, outcome.failed) == (29, 1, ["K17"])
            assert "the database refused the row" in errors(writer)["K17"]
            assert len(stored(writer)) == 29
            with pytest.raises(WarehouseError, match="refused every row"):
                put(writer, *(answer(f"Z{i}", "success", 1, "poison") for i in range(3)))
        finally:
            writer.close()
            warehouse.drop(table)

    def test_keys_the_database_cannot_hold_are_not_looked_up(self, writer: WarehouseWriter) -> None:
        put(writer, answer("OK1", "success", 1))
        assert writer.terminal_trade_nos(MERCHANT, ["OK1", "NUL\x00", "X\ud800", "L" * 300]) == {"OK1"}


LEGACY = {
    "sqlite": ColumnTypes(text_key="TEXT", numeric="TEXT", timestamp="TEXT"),
    "postgres": ColumnTypes(text_key="TEXT", numeric="NUMERIC(20,4)", timestamp="TIMESTAMPTZ"),
    "mariadb": ColumnTypes(
        text_key="VARCHAR(255) COLLATE utf8mb4_bin",
        text="LONGTEXT",
        numeric="DECIMAL(20,4)",
        timestamp="DATETIME(6)",
        table_suffix=" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    ),
}


class TestLegacyTables:
    def test_widened_without_losing_rows(self, warehouse: Warehouse) -> None:
        table, name, writer = fresh(warehouse, "old")
        q = warehouse.quote
        for statement in create_table_statements(
            name.quoted(q), name.errors.quoted(q), q, LEGACY[warehouse.dialect]
        ):
            run_sql(warehouse.conn_id, statement)
        run_sql(
            warehouse.conn_id,
            f"INSERT INTO {q}{table}{q} ({q}merchant_no{q}, {q}trade_no{q}, {q}state{q}, {q}amount{q}, "
            f"{q}fetched_at{q}, {q}raw{q}) VALUES ('{MERCHANT}', 'OLD1', 'success', '300.0000', "
            "'2026-01-01 00:00:00+00:00', '{}')".replace(
                "+00:00'", "'" if warehouse.dialect == "mariadb" else "+00:00'"
            ),
        )
        tiny = status_row(MERCHANT, status("NEW1", amount="0.00004999"), at(1))
        try:
            stale = writer_for(db_hook(warehouse.conn_id), name)
            stale.prepare_tables(create=False)  # the user manages the table: never rounded, refused
            if warehouse.dialect != "sqlite":
                with pytest.raises(
                    UnstorableValueError, match=r"amount 0.00004999 not representable in .*\(20,4\)"
                ):
                    stale.adapt_status(tiny)
            stale.close()
            writer.prepare_tables(create=True)
            put(writer, tiny)
            cur = writer.conn.cursor()
            cur.execute(f"SELECT {q}trade_no{q}, {q}amount{q} FROM {q}{table}{q} ORDER BY 1")
            assert [(t, Decimal(str(a))) for t, a in cur.fetchall()] == [
                ("NEW1", Decimal("0.00004999")),
                ("OLD1", Decimal("300")),
            ]
            writer.conn.commit()
        finally:
            writer.close()
            warehouse.drop(table)
