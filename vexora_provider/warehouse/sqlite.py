"""SQLite: conditional ``executemany`` upserts inside ``BEGIN IMMEDIATE``, amounts and times as text."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vexora_provider.warehouse.base import WarehouseError
from vexora_provider.warehouse.batch import WarehouseWriter
from vexora_provider.warehouse.rows import ERROR_COLUMNS, STATUS_COLUMNS, ErrorRow, Reversal, StatusRow
from vexora_provider.warehouse.schema import AMOUNT_COLUMNS, ColumnTypes
from vexora_provider.warehouse.sql import final_flag, supersedes_sql, update_set
from vexora_provider.warehouse.values import EXACT_TEXT, AmountColumn, exact_text

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from vexora_provider.warehouse.names import TableName

__all__ = ["SqliteWriter", "sqlite_version_ok"]

_REVERSAL_FUNCTION = "vexora_note_reversal"


def sqlite_version_ok() -> bool:
    """Whether the linked SQLite supports ``ON CONFLICT … DO UPDATE`` (3.24+)."""
    return sqlite3.sqlite_version_info >= (3, 24, 0)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(sep=" ", timespec="microseconds")


class SqliteWriter(WarehouseWriter):
    """
    SQLite: ``executemany`` upserts inside ``BEGIN IMMEDIATE`` with a busy timeout.

    Amounts are stored as TEXT, digit for digit as the gateway sent them: SQLite has no decimal
    type, and NUMERIC affinity would turn them into binary floats (15 significant digits). Times
    are ISO-8601 UTC text (``YYYY-MM-DD HH:MM:SS.ffffff+00:00``), which sorts and compares as
    text and which SQLite's date functions read.

    ``BEGIN IMMEDIATE`` takes the database's write lock, so writers queue instead of interleaving:
    every read inside a batch is exact, and no error row can be written beside a status another
    writer is committing (no sweep after the commit is needed).

    :param hook: a SQLite common-sql :class:`DbApiHook`.
    :param table: the validated status table.
    """

    dialect = "sqlite"
    placeholder = "?"
    types = ColumnTypes(text_key="TEXT", numeric="TEXT", timestamp="TEXT")
    amount_column = EXACT_TEXT
    unconstrained_numeric = EXACT_TEXT
    sweeps_errors = False
    # BEGIN IMMEDIATE holds the write lock, so "no error rows" stays true until COMMIT.
    probes_errors = True
    busy_timeout_ms = 60_000

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        super().__init__(hook, table)
        self._last_time: datetime | None = None
        self._last_text: str | None = None
        self._reversals: list[Reversal] = []
        self._upsert = self._upsert_sql()

    def _prepare(self, conn: Any) -> None:
        if not sqlite_version_ok():
            raise WarehouseError(f"SQLite {sqlite3.sqlite_version} has no upsert; 3.24 or newer is needed")
        # Explicit transactions: the sqlite3 module's implicit BEGIN is DEFERRED, and a deferred
        # transaction that upgrades to a write lock cannot wait on busy_timeout.
        conn.isolation_level = None
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        conn.create_function(_REVERSAL_FUNCTION, 3, self._note_reversal)

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def _note_reversal(self, trade_no: str, before: str, after: str) -> int:
        self._reversals.append(Reversal(trade_no, before, after))
        return 1

    def _upsert_sql(self) -> str:
        # The existing row is the unqualified columns, the new one ``excluded``. The reversal
        # function only runs for the rare row whose final state changes to another final state
        # (SQLite evaluates OR lazily), so detecting reversals costs nothing otherwise.
        columns = STATUS_COLUMNS
        old, new = '"state"', 'excluded."state"'
        guard = supersedes_sql(new, 'excluded."fetched_at"', old, '"fetched_at"')
        changed_final = f"{final_flag(old)} = 1 AND {final_flag(new)} = 1 AND {old} <> {new}"
        reversal = f'NOT ({changed_final}) OR {_REVERSAL_FUNCTION}(excluded."trade_no", {old}, {new})'
        return (
            self._insert_sql(self.status_sql, columns)
            + f" ON CONFLICT ({self._columns(['merchant_no', 'trade_no'])}) DO UPDATE SET "
            + update_set(columns, self.quote, "excluded.{col}")
            + f" WHERE {guard} AND ({reversal})"
        )

    def _fetched(self, value: datetime) -> str | None:
        # Rows fetched together share one fetched_at object: format it once (isoformat is slow).
        if value is not self._last_time:
            self._last_time, self._last_text = value, _iso(value)
        return self._last_text

    def _convert_status(self, row: StatusRow) -> StatusRow:
        return row._replace(
            amount=exact_text(row.amount),
            order_amount=exact_text(row.order_amount),
            pay_amount=exact_text(row.pay_amount),
            success_time=_iso(row.success_time),
            fetched_at=self._fetched(row.fetched_at),
        )

    def adapt_error(self, row: ErrorRow) -> ErrorRow:
        return row._replace(failed_at=_iso(row.failed_at))

    def _upsert_statuses(self, cur: Any, rows: list[StatusRow]) -> list[Reversal]:
        self._reversals = []
        cur.executemany(self._upsert, rows)
        return self._reversals

    def _insert_errors(self, cur: Any, rows: list[ErrorRow]) -> None:
        # The batch already dropped failures the status table makes obsolete, and no other writer
        # can commit meanwhile: only the later of two failures remains to decide.
        cur.executemany(
            self._insert_sql(self.errors_sql, ERROR_COLUMNS)
            + f" ON CONFLICT ({self._columns(['merchant_no', 'trade_no'])}) DO UPDATE SET "
            + update_set(ERROR_COLUMNS, self.quote, "excluded.{col}")
            + ' WHERE excluded."failed_at" >= "failed_at"',
            rows,
        )

    def _read_amount_columns(self, cur: Any) -> dict[str, AmountColumn]:
        # Text is kept as text only in a column of TEXT affinity (or none); any other declared
        # type (NUMERIC, REAL, INTEGER…) turns "0.1" into a binary float.
        schema = f"{self.quote}{self.table.schema}{self.quote}." if self.table.schema else ""
        cur.execute(f"PRAGMA {schema}table_info({self.quote}{self.table.name}{self.quote})")
        columns: dict[str, AmountColumn] = {}
        for _, name, declared, *_ in cur.fetchall():
            if name in AMOUNT_COLUMNS:
                kind = str(declared or "").upper()
                # SQLite's affinity rules, in their order: INT first, then text or no affinity.
                text = not kind or (
                    "INT" not in kind and any(m in kind for m in ("CHAR", "CLOB", "TEXT", "BLOB"))
                )
                columns[name] = EXACT_TEXT if text else AmountColumn(f"{kind} affinity", binary_float=True)
        return columns
