"""SQLite: ``executemany`` upserts inside ``BEGIN IMMEDIATE``, amounts and times stored as text."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from vexora_provider.warehouse.base import WarehouseError, WarehouseWriter
from vexora_provider.warehouse.rows import ERROR_COLUMNS, STATUS_COLUMNS, ErrorRow, StatusRow
from vexora_provider.warehouse.schema import ColumnTypes

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from vexora_provider.warehouse.names import TableName

__all__ = ["SqliteWriter", "sqlite_version_ok"]


def sqlite_version_ok() -> bool:
    """Whether the linked SQLite supports ``ON CONFLICT … DO UPDATE`` (3.24+)."""
    return sqlite3.sqlite_version_info >= (3, 24, 0)


def _text(value: Decimal | None) -> str | None:
    # Amounts come from status_row() quantized to 4 places, where str() never uses an exponent.
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(sep=" ", timespec="microseconds")


class SqliteWriter(WarehouseWriter):
    """
    SQLite: ``executemany`` upserts inside ``BEGIN IMMEDIATE`` with a busy timeout.

    Amounts are stored as TEXT with four decimals: SQLite has no decimal type, and NUMERIC affinity
    would turn them into binary floats (15 significant digits). Times are ISO-8601 UTC text
    (``YYYY-MM-DD HH:MM:SS.ffffff+00:00``), which sorts and which SQLite's date functions read.

    :param hook: a SQLite common-sql :class:`DbApiHook`.
    :param table: the validated status table.
    """

    dialect = "sqlite"
    placeholder = "?"
    types = ColumnTypes(text_key="TEXT", numeric="TEXT", timestamp="TEXT")
    busy_timeout_ms = 60_000

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        super().__init__(hook, table)
        self._last_time: datetime | None = None
        self._last_text: str | None = None

    def _prepare(self, conn: Any) -> None:
        if not sqlite_version_ok():
            raise WarehouseError(f"SQLite {sqlite3.sqlite_version} has no upsert; 3.24 or newer is needed")
        # Explicit transactions: the sqlite3 module's implicit BEGIN is DEFERRED, and a deferred
        # transaction that upgrades to a write lock cannot wait on busy_timeout.
        conn.isolation_level = None
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def _fetched(self, value: datetime) -> str | None:
        # Rows fetched together share one fetched_at object: format it once (isoformat is slow).
        if value is not self._last_time:
            self._last_time, self._last_text = value, _iso(value)
        return self._last_text

    def adapt_status(self, row: StatusRow) -> StatusRow:
        return (
            *row[:6],
            _text(row[6]),
            _text(row[7]),
            _text(row[8]),
            _iso(row[9]),
            self._fetched(row[10]),
            row[11],
        )

    def adapt_error(self, row: ErrorRow) -> ErrorRow:
        return (*row[:5], _iso(row[5]))

    def _write(self, cur: Any, rows: list[StatusRow], errors: list[ErrorRow]) -> None:
        if rows:
            cur.executemany(
                self._insert_sql(self.status_sql, STATUS_COLUMNS) + self._on_conflict_update(STATUS_COLUMNS),
                rows,
            )
        # BEGIN IMMEDIATE holds the write lock, so "no error rows" stays true until COMMIT: the
        # usual case (nothing failed before) then skips the keyed deletes.
        cur.execute(f"SELECT 1 FROM {self.errors_sql} LIMIT 1")
        if cur.fetchone() is not None:
            self._delete_keys(cur, self.errors_sql, rows)
        if errors:
            cur.executemany(
                self._insert_sql(self.errors_sql, ERROR_COLUMNS) + self._on_conflict_update(ERROR_COLUMNS),
                errors,
            )
