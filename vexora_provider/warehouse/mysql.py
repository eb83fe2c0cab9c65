"""MySQL/MariaDB: ``INSERT … ON DUPLICATE KEY UPDATE`` sent by the driver as multi-row inserts."""

from __future__ import annotations

from typing import Any

from vexora_provider.warehouse.base import NaiveUtcTimes, WarehouseWriter, update_set
from vexora_provider.warehouse.rows import ERROR_COLUMNS, STATUS_COLUMNS, ErrorRow, StatusRow
from vexora_provider.warehouse.schema import ColumnTypes

__all__ = ["MySqlWriter"]


class MySqlWriter(NaiveUtcTimes, WarehouseWriter):
    """
    MySQL/MariaDB: ``executemany`` of ``INSERT … ON DUPLICATE KEY UPDATE`` in one transaction.

    :param hook: a MySQL common-sql :class:`DbApiHook`.
    :param table: the validated status table.
    """

    dialect = "mysql"
    quote = "`"
    types = ColumnTypes(
        # Binary collation: MySQL's default one is case-insensitive, which would merge "ab" and "AB".
        text_key="VARCHAR(255) COLLATE utf8mb4_bin",
        text="LONGTEXT",
        numeric="DECIMAL(20,4)",
        timestamp="DATETIME(6)",
        # utf8mb4 keeps any text; InnoDB for transactions.
        table_suffix=" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )

    def _upsert_sql(self, table_sql: str, columns: tuple[str, ...]) -> str:
        return (
            self._insert_sql(table_sql, columns)
            + f" ON DUPLICATE KEY UPDATE {update_set(columns, self.quote, 'VALUES({col})')}"
        )

    def _write(self, cur: Any, rows: list[StatusRow], errors: list[ErrorRow]) -> None:
        if rows:
            cur.executemany(self._upsert_sql(self.status_sql, STATUS_COLUMNS), rows)
        self._delete_keys(cur, self.errors_sql, rows)
        if errors:
            cur.executemany(self._upsert_sql(self.errors_sql, ERROR_COLUMNS), errors)
