"""Any DB-API driver: delete the batch's keys, then insert, in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vexora_provider.warehouse.base import NaiveUtcTimes, WarehouseWriter, dialect_name
from vexora_provider.warehouse.rows import ERROR_COLUMNS, STATUS_COLUMNS, ErrorRow, StatusRow

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from vexora_provider.warehouse.names import TableName

__all__ = ["GenericWriter"]

_BACKTICK_DIALECTS = frozenset({"mysql", "mariadb"})


class GenericWriter(NaiveUtcTimes, WarehouseWriter):
    """
    Delete-then-insert in one transaction: correct on any DB-API driver and SQL dialect.

    Times are stored as naive UTC, since ``TIMESTAMP`` without time zone is the portable type.

    :param hook: any common-sql :class:`DbApiHook`; its ``placeholder`` is used.
    :param table: the validated status table.
    """

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        # MySQL reads "x" as a string unless ANSI_QUOTES is on: quote its own way even here.
        self.quote = "`" if dialect_name(hook).lower() in _BACKTICK_DIALECTS else '"'
        super().__init__(hook, table)
        self.placeholder = hook.placeholder

    def _write(self, cur: Any, rows: list[StatusRow], errors: list[ErrorRow]) -> None:
        self._delete_keys(cur, self.status_sql, rows)
        self._delete_keys(cur, self.errors_sql, [*rows, *errors])
        if rows:
            cur.executemany(self._insert_sql(self.status_sql, STATUS_COLUMNS), rows)
        if errors:
            cur.executemany(self._insert_sql(self.errors_sql, ERROR_COLUMNS), errors)
