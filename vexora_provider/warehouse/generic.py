"""Any DB-API driver: lock the batch's keys, keep the winning answers, delete and insert them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vexora_provider.warehouse.base import NaiveUtcTimes, dialect_name
from vexora_provider.warehouse.batch import WarehouseWriter
from vexora_provider.warehouse.rows import (
    ERROR_COLUMNS,
    STATUS_COLUMNS,
    ErrorRow,
    Reversal,
    StatusRow,
    is_final,
    supersedes,
)
from vexora_provider.warehouse.sql import Key
from vexora_provider.warehouse.values import instant

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from vexora_provider.warehouse.names import TableName

__all__ = ["GenericWriter"]

_BACKTICK_DIALECTS = frozenset({"mysql", "mariadb"})
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


class GenericWriter(NaiveUtcTimes, WarehouseWriter):
    """
    Portable SQL only (``UPDATE``, ``SELECT``, ``DELETE``, ``INSERT`` with ``IN`` lists), in one
    transaction per batch, on any DB-API driver and SQL dialect.

    The ordering rule runs in Python, on rows this transaction has locked first: a no-op
    ``UPDATE`` of the batch's existing keys takes their row locks (where the database has row
    locks), then their stored state and fetch time are read, the answers that win replace them
    (delete, insert). A key another writer inserts meanwhile makes the insert fail on the primary
    key, and the batch runs again. Times are stored as naive UTC, since ``TIMESTAMP`` without time
    zone is the portable type.

    :param hook: any common-sql :class:`DbApiHook`; its ``placeholder`` is used.
    :param table: the validated status table.
    """

    key_max_chars = 255
    # Not every database stores NUL in text (PostgreSQL does not): the portable path refuses it.
    nul_refused_by = "portable SQL"
    integrity_is_conflict = True

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        # MySQL reads "x" as a string unless ANSI_QUOTES is on: quote its own way even here.
        self.quote = "`" if dialect_name(hook).lower() in _BACKTICK_DIALECTS else '"'
        super().__init__(hook, table)
        self.placeholder = hook.placeholder

    def _convert_status(self, row: StatusRow) -> StatusRow:
        return self._naive_times(row)

    def _upsert_statuses(self, cur: Any, rows: list[StatusRow]) -> list[Reversal]:
        keys = [(r.merchant_no, r.trade_no) for r in rows]
        merchant = self._col("merchant_no")
        self._keyed(cur, f"UPDATE {self.status_sql} SET {merchant} = {merchant}", keys)
        stored = self._stored_statuses(cur, keys)
        winners, reversals = [], []
        for row in rows:
            before = stored.get((row.merchant_no, row.trade_no))
            if before is None:
                winners.append(row)
            elif supersedes(row.state, instant(row.fetched_at), before[0], instant(before[1])):
                winners.append(row)
                if is_final(before[0]) and is_final(row.state) and before[0] != row.state:
                    reversals.append(Reversal(row.trade_no, before[0], row.state))
        replaced = [(r.merchant_no, r.trade_no) for r in winners if (r.merchant_no, r.trade_no) in stored]
        if replaced:
            self._keyed(cur, f"DELETE FROM {self.status_sql}", replaced)
        if winners:
            cur.executemany(self._insert_sql(self.status_sql, STATUS_COLUMNS), winners)
        return reversals

    def _insert_errors(self, cur: Any, rows: list[ErrorRow]) -> None:
        keys = [(r.merchant_no, r.trade_no) for r in rows]
        merchant = self._col("merchant_no")
        self._keyed(cur, f"UPDATE {self.errors_sql} SET {merchant} = {merchant}", keys)
        columns = self._columns(["merchant_no", "trade_no", "failed_at"])
        found = self._keyed(cur, f"SELECT {columns} FROM {self.errors_sql}", keys, fetch=True)
        stored: dict[Key, Any] = {(m, t): instant(f) for m, t, f in found}
        later = [r for r in rows if instant(r.failed_at) >= stored.get((r.merchant_no, r.trade_no), _EPOCH)]
        replaced = [(r.merchant_no, r.trade_no) for r in later if (r.merchant_no, r.trade_no) in stored]
        if replaced:
            self._keyed(cur, f"DELETE FROM {self.errors_sql}", replaced)
        if later:
            cur.executemany(self._insert_sql(self.errors_sql, ERROR_COLUMNS), later)
