"""MySQL/MariaDB: conditional ``INSERT … ON DUPLICATE KEY UPDATE`` sent as multi-row inserts."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from vexora_provider.warehouse.base import NaiveUtcTimes
from vexora_provider.warehouse.batch import WarehouseWriter
from vexora_provider.warehouse.rows import (
    ERROR_COLUMNS,
    FINAL_STATES,
    STATUS_COLUMNS,
    ErrorRow,
    Reversal,
    StatusRow,
    supersedes,
)
from vexora_provider.warehouse.schema import ColumnTypes
from vexora_provider.warehouse.sql import Key, final_flag, superseded_error_sql, supersedes_sql, update_set
from vexora_provider.warehouse.values import check_time, decimal_column, instant, naive_utc, plain_decimal

__all__ = ["MySqlWriter"]

_DATETIME_MIN, _DATETIME_MAX = datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)
_DATETIME_RANGE = "DATETIME's range (years 1000-9999)"
_AMOUNT_TYPE = (65, 30)  # the widest DECIMAL: 35 digits before the point, 30 after
_VARIABLE = "@vexora_reversals"


def _text(value: Any) -> str | None:
    # Sent as text, which MySQL converts to DECIMAL exactly (no exponent: the check bounded it).
    return None if value is None else plain_decimal(value)


class MySqlWriter(NaiveUtcTimes, WarehouseWriter):
    """
    MySQL/MariaDB: ``executemany`` of a conditional ``INSERT … ON DUPLICATE KEY UPDATE``.

    Each column is assigned ``IF(<ordering rule>, new, old)``, with ``fetched_at`` and ``state``
    (which the rule reads) assigned last, so the rule sees the stored values whether the server
    assigns left to right (the default) or simultaneously (MariaDB's ``SIMULTANEOUS_ASSIGNMENT``).
    Sessions run at ``READ COMMITTED``, which takes no gap locks on these keyed writes.

    :param hook: a MySQL common-sql :class:`DbApiHook`.
    :param table: the validated status table.
    """

    dialect = "mysql"
    quote = "`"
    probes_errors = True
    types = ColumnTypes(
        # Binary collation: MySQL's default one is case-insensitive, which would merge "ab" and "AB".
        text_key="VARCHAR(255) COLLATE utf8mb4_bin",
        text="LONGTEXT",
        numeric="DECIMAL({},{})".format(*_AMOUNT_TYPE),
        timestamp="DATETIME(6)",
        # utf8mb4 keeps any text; InnoDB for transactions.
        table_suffix=" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )
    amount_column = decimal_column(*_AMOUNT_TYPE)
    unconstrained_numeric = decimal_column(10, 0)  # what a bare DECIMAL means in MySQL
    key_max_chars = 255
    legacy_amount_type = "decimal"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._collects_reversals = True  # decided per connection in _prepare
        new, old = "VALUES(`state`)", "`state`"
        guard = supersedes_sql(new, "VALUES(`fetched_at`)", old, "`fetched_at`")
        changed_final = f"{final_flag(old)} = 1 AND {final_flag(new)} = 1 AND {old} <> {new}"
        # `state` is assigned last, so its own expression still sees the stored state: for the
        # rare row whose final state becomes another final state, the server appends it to a
        # session variable read after the statement; nothing is read back for the others.
        note = f"CONCAT_WS(0x1e, {_VARIABLE}, JSON_ARRAY(VALUES(`trade_no`), {old}, {new}))"
        noting = f"IF({changed_final}, IF(({_VARIABLE} := {note}) IS NULL, {new}, {new}), {new})"
        others = update_set(
            [c for c in STATUS_COLUMNS if c != "state"],
            self.quote,
            f"IF({guard}, VALUES({{col}}), {{col}})",
            last=("fetched_at",),
        )
        head = self._insert_sql(self.status_sql, STATUS_COLUMNS) + " ON DUPLICATE KEY UPDATE "
        self._upsert = head + others + f", {old} = IF({guard}, {noting}, {old})"
        self._upsert_plain = head + others + f", {old} = IF({guard}, {new}, {old})"

    def _prepare(self, conn: Any) -> None:
        super()._prepare(conn)
        cur = conn.cursor()
        with contextlib.suppress(Exception):  # a server that refuses keeps its own level
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        try:
            # A variable assigned inside an expression: MariaDB supports it, MySQL 8 deprecates
            # it (a warning). Where a server refuses it, reversals are found by a read instead.
            cur.execute(f"SELECT ({_VARIABLE} := NULL) IS NULL")
            cur.fetchall()
        except Exception:
            self._collects_reversals = False
        with contextlib.suppress(Exception):
            cur.close()

    def _current_schema_sql(self) -> str:
        return "DATABASE()"

    @contextlib.contextmanager
    def _ddl_lock(self, cur: Any) -> Iterator[None]:
        # A named lock, held by the session across the implicit commits of DDL statements.
        name = "vexora:" + hashlib.sha1(str(self.table).encode(), usedforsecurity=False).hexdigest()
        cur.execute("SELECT GET_LOCK(%s, 120)", (name,))
        cur.fetchall()
        try:
            yield
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
            cur.fetchall()

    def _widen(self, column: str) -> str:
        return f"MODIFY {self._col(column)} {self.types.numeric}"

    def _convert_status(self, row: StatusRow) -> StatusRow:
        success_time = naive_utc(row.success_time)
        check_time("success_time", success_time, _DATETIME_MIN, _DATETIME_MAX, _DATETIME_RANGE)
        return row._replace(
            amount=_text(row.amount),
            order_amount=_text(row.order_amount),
            pay_amount=_text(row.pay_amount),
            success_time=success_time,
            fetched_at=naive_utc(row.fetched_at),
        )

    def _upsert_statuses(self, cur: Any, rows: list[StatusRow]) -> list[Reversal]:
        if not self._collects_reversals:
            reversals = self._reversal_candidates(cur, rows)
            cur.executemany(self._upsert_plain, rows)
            return reversals
        cur.execute(f"SET {_VARIABLE} = NULL")
        cur.executemany(self._upsert, rows)
        cur.execute(f"SELECT {_VARIABLE}")
        (noted,) = cur.fetchone()
        if not noted:
            return []
        text = noted.decode() if isinstance(noted, bytes | bytearray) else str(noted)
        return [Reversal(*json.loads(item)) for item in text.split("\x1e")]

    def _reversal_candidates(self, cur: Any, rows: list[StatusRow]) -> list[Reversal]:
        """Rows whose stored final state the upsert will replace with another final state.

        Read before the upsert (READ COMMITTED: the latest committed rows), asking per incoming
        final state only for stored rows in a different final state: the answer is almost always
        empty, so it costs the keys sent, not rows read back.
        """
        reversals = []
        for state in FINAL_STATES:
            incoming = {(r.merchant_no, r.trade_no): r for r in rows if r.state == state}
            if not incoming:
                continue
            others = ", ".join(f"'{s}'" for s in FINAL_STATES if s != state)
            head = f"SELECT `merchant_no`, `trade_no`, `state`, `fetched_at` FROM {self.status_sql}"
            for merchant_no, trade_no, before, fetched_at in self._keyed(
                cur, head, list(incoming), tail=f" AND `state` IN ({others})", fetch=True
            ):
                row = incoming[merchant_no, trade_no]
                if supersedes(row.state, instant(row.fetched_at), before, instant(fetched_at)):
                    reversals.append(Reversal(row.trade_no, before, row.state))
        return reversals

    def _clear_errors(self, cur: Any, keys: Sequence[Key]) -> None:
        obsolete = superseded_error_sql("c.`state`", "c.`fetched_at`", "e.`failed_at`")
        head = (
            f"DELETE e FROM {self.errors_sql} e JOIN {self.status_sql} c "
            "ON c.`merchant_no` = e.`merchant_no` AND c.`trade_no` = e.`trade_no`"
        )
        self._keyed(cur, head, keys, tail=f" AND {obsolete}", alias="e.")

    def _insert_errors(self, cur: Any, rows: list[ErrorRow]) -> None:
        # NOT EXISTS: a status another writer committed since this batch read the table wins.
        obsolete = superseded_error_sql("c.`state`", "c.`fetched_at`", "%s")
        later = "VALUES(`failed_at`) >= `failed_at`"
        same_key = "c.`merchant_no` = %s AND c.`trade_no` = %s"
        newer_status = f"SELECT 1 FROM {self.status_sql} c WHERE {same_key} AND {obsolete}"
        statement = (
            f"INSERT INTO {self.errors_sql} ({self._columns(ERROR_COLUMNS)}) "
            f"SELECT {self._marks(len(ERROR_COLUMNS))} FROM DUAL WHERE NOT EXISTS ({newer_status}) "
            "ON DUPLICATE KEY UPDATE "
            + update_set(
                ERROR_COLUMNS, self.quote, f"IF({later}, VALUES({{col}}), {{col}})", last=("failed_at",)
            )
        )
        # One statement per failure: the drivers' executemany only batches INSERT … VALUES
        # (mysql-connector refuses INSERT … SELECT outright), and failures are few.
        for row in rows:
            cur.execute(statement, (*row, row.merchant_no, row.trade_no, row.failed_at))
