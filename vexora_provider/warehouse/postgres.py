"""PostgreSQL: COPY into a temporary stage, then one conditional ``INSERT … SELECT … ON CONFLICT``."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from vexora_provider.warehouse.batch import WarehouseWriter
from vexora_provider.warehouse.rows import ERROR_COLUMNS, STATUS_COLUMNS, ErrorRow, Reversal, StatusRow
from vexora_provider.warehouse.schema import ColumnTypes
from vexora_provider.warehouse.sql import Key, final_flag, superseded_error_sql, supersedes_sql, update_set
from vexora_provider.warehouse.values import POSTGRES_NUMERIC

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from vexora_provider.warehouse.names import TableName

__all__ = ["PostgresWriter"]

# Column type oids binary COPY may write into: text (or varchar), numeric, timestamptz.
_PG_TEXT, _PG_NUMERIC, _PG_TIMESTAMPTZ = frozenset({25, 1043}), frozenset({1700}), frozenset({1184})
_PG_BINARY_TYPES = (_PG_TEXT,) * 6 + (_PG_NUMERIC,) * 3 + (_PG_TIMESTAMPTZ,) * 2 + (_PG_TEXT,)
# Byte order, the same for every writer whatever the database's collation: rows are locked in it.
_KEY_ORDER = '"merchant_no" COLLATE "C", "trade_no" COLLATE "C"'
# Reports a final state replaced by another final state as a notice the session collects. A
# session-temporary function (like the stage, it needs only the TEMP privilege and vanishes with
# the connection); its own client_min_messages makes sure the notice reaches the client.
_REVERSAL_FUNCTION = "pg_temp.vexora_reversal"
_REVERSAL_FUNCTION_SQL = (
    f"CREATE OR REPLACE FUNCTION {_REVERSAL_FUNCTION}(trade_no text, before text, after text) "
    "RETURNS boolean LANGUAGE plpgsql VOLATILE SET client_min_messages = notice AS $$ BEGIN "
    "RAISE NOTICE '%', json_build_array('vexora_reversal', trade_no, before, after); RETURN true; END $$"
)


class _NoticeSink:
    """Stands in for psycopg2's ``connection.notices`` list: hands each notice on, keeps none."""

    def __init__(self, handle: Callable[[str], None]) -> None:
        self.handle = handle

    def append(self, message: str) -> None:
        self.handle(message)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, Decimal):
        text = f"{value:f}"
    else:
        text = str(value)
    return '"' + text.replace('"', '""') + '"'


class PostgresWriter(WarehouseWriter):
    """
    PostgreSQL: COPY into a temporary stage, then one conditional ``INSERT … ON CONFLICT``.

    The upsert's ``DO UPDATE … WHERE`` applies the ordering rule on the row as locked, so
    concurrent writers converge; rows are inserted in key order, so they lock in one order and do
    not deadlock each other. Amounts are unconstrained ``NUMERIC`` (every digit kept).

    :param hook: a PostgreSQL common-sql :class:`DbApiHook` (psycopg 3 or psycopg2).
    :param table: the validated status table.
    """

    dialect = "postgresql"
    types = ColumnTypes(text_key="TEXT", numeric="NUMERIC", timestamp="TIMESTAMPTZ")
    amount_column = POSTGRES_NUMERIC
    unconstrained_numeric = POSTGRES_NUMERIC
    nul_refused_by = "PostgreSQL"
    probes_errors = True
    legacy_amount_type = "numeric"
    stage = "_vexora_stage"

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        super().__init__(hook, table)
        self._binary_types: list[int] | None = None  # decided once per writer
        self._function_ready = False
        self._reversals: list[Reversal] = []
        self._upsert = self._upsert_sql()

    def _current_schema_sql(self) -> str:
        return "current_schema()"

    @contextlib.contextmanager
    def _ddl_lock(self, cur: Any) -> Iterator[None]:
        # Two sessions running CREATE TABLE IF NOT EXISTS at once can both find the table missing
        # and one then fails on the catalog's unique index: serialise them on an advisory lock,
        # released at commit. The second then finds the table.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"vexora_provider:{self.table}",))
        yield

    def _widen(self, column: str) -> str:
        # numeric(20,4) -> numeric only drops the type modifier: no table rewrite, values kept.
        return f"ALTER COLUMN {self._col(column)} TYPE NUMERIC"

    def _prepare(self, conn: Any) -> None:
        super()._prepare(conn)
        if hasattr(conn, "add_notice_handler"):  # psycopg 3
            conn.add_notice_handler(lambda diag: self._on_notice(diag.message_primary))
        else:  # psycopg2 keeps notices in a list it trims to 50; anything with append() will do
            conn.notices = _NoticeSink(self._on_notice)

    def _on_notice(self, message: str | None) -> None:
        text = (message or "").strip()
        if text.startswith("NOTICE:"):  # psycopg2 passes the whole line
            text = text.removeprefix("NOTICE:").strip()
        if text.startswith('["vexora_reversal"'):
            _, trade_no, before, after = json.loads(text)
            self._reversals.append(Reversal(trade_no, before, after))

    def _after_rollback(self) -> None:
        self._function_ready = False  # created in the transaction that was rolled back

    def _upsert_sql(self) -> str:
        cols = self._columns(STATUS_COLUMNS)
        new, old = 'EXCLUDED."state"', 'cur."state"'
        guard = supersedes_sql(new, 'EXCLUDED."fetched_at"', old, 'cur."fetched_at"')
        changed_final = f"{final_flag(old)} = 1 AND {final_flag(new)} = 1 AND {old} <> {new}"
        # CASE evaluates in order: the function runs only for a row the rule replaces whose final
        # state becomes another final state, on the row as locked — never for the others.
        condition = (
            f"CASE WHEN {guard} IS NOT TRUE THEN false "
            f'WHEN {changed_final} THEN {_REVERSAL_FUNCTION}(EXCLUDED."trade_no", {old}, {new}) ELSE true END'
        )
        return (
            f"INSERT INTO {self.status_sql} AS cur ({cols}) SELECT {cols} FROM {self.stage} "
            f'ORDER BY {_KEY_ORDER} ON CONFLICT ("merchant_no", "trade_no") DO UPDATE SET '
            + update_set(STATUS_COLUMNS, self.quote, "EXCLUDED.{col}")
            + f" WHERE {condition}"
        )

    def _upsert_statuses(self, cur: Any, rows: list[StatusRow]) -> list[Reversal]:
        cols = self._columns(STATUS_COLUMNS)
        # Session-local, emptied at every commit; created on the first batch of a connection.
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM {self.status_sql} WITH NO DATA"
        )
        if not self._function_ready:
            cur.execute(_REVERSAL_FUNCTION_SQL)
            self._function_ready = True
        self._copy(cur, f"COPY {self.stage} ({cols}) FROM STDIN", rows)
        self._reversals = []
        cur.execute(self._upsert)
        return self._reversals

    def _clear_errors(self, cur: Any, keys: Sequence[Key]) -> None:
        obsolete = superseded_error_sql('c."state"', 'c."fetched_at"', 'e."failed_at"')
        for merchant_no in sorted({m for m, _ in keys}):
            cur.execute(
                f"DELETE FROM {self.errors_sql} e USING {self.status_sql} c "
                'WHERE e."merchant_no" = %s AND e."trade_no" = ANY(%s) '
                'AND c."merchant_no" = e."merchant_no" AND c."trade_no" = e."trade_no" AND ' + obsolete,
                (merchant_no, [t for m, t in keys if m == merchant_no]),
            )

    def _insert_errors(self, cur: Any, rows: list[ErrorRow]) -> None:
        # NOT EXISTS: a status another writer committed since this batch read the table wins.
        obsolete = superseded_error_sql('c."state"', 'c."fetched_at"', 'v."failed_at"')
        values = ", ".join(
            ["(%s::text, %s::text, %s::text, %s::text, %s::integer, %s::timestamptz)"] * len(rows)
        )
        cur.execute(
            f"INSERT INTO {self.errors_sql} AS cur ({self._columns(ERROR_COLUMNS)}) "
            f"SELECT * FROM (VALUES {values}) AS v ({self._columns(ERROR_COLUMNS)}) "
            f"WHERE NOT EXISTS (SELECT 1 FROM {self.status_sql} c "
            f'WHERE c."merchant_no" = v."merchant_no" AND c."trade_no" = v."trade_no" AND {obsolete}) '
            f'ORDER BY {_KEY_ORDER} ON CONFLICT ("merchant_no", "trade_no") DO UPDATE SET '
            + update_set(ERROR_COLUMNS, self.quote, "EXCLUDED.{col}")
            + ' WHERE EXCLUDED."failed_at" >= cur."failed_at"',
            [value for row in rows for value in row],
        )

    def _stage_types(self, cur: Any) -> list[int] | None:
        """The stage's column type oids when they are the ones binary COPY is safe for, else None."""
        if self._binary_types is None:
            cur.execute(f"SELECT {self._columns(STATUS_COLUMNS)} FROM {self.stage} LIMIT 0")
            oids = [column.type_code for column in cur.description]
            ok = len(oids) == len(_PG_BINARY_TYPES) and all(
                o in a for o, a in zip(oids, _PG_BINARY_TYPES, strict=True)
            )
            self._binary_types = oids if ok else []
        return self._binary_types or None

    def _copy(self, cur: Any, statement: str, rows: list[StatusRow]) -> None:
        if hasattr(cur, "copy"):  # psycopg 3
            # Binary COPY with declared types is ~1.5x faster than text on the client; only for
            # our own column types (a table created by hand with other types gets text COPY).
            types = self._stage_types(cur)
            with cur.copy(statement + " (FORMAT BINARY)" if types else statement) as copy:
                if types:
                    copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            return
        # psycopg2: CSV in memory (one batch). Every value is quoted and NULL is the only unquoted
        # empty field, so empty strings and NULLs stay distinct.
        buffer = io.StringIO()
        for row in rows:
            buffer.write(",".join(_csv_cell(v) for v in row))
            buffer.write("\n")
        buffer.seek(0)
        cur.copy_expert(statement + " WITH (FORMAT csv)", buffer)
