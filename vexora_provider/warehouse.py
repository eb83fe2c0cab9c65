"""The warehouse side of the payout-status sync: table names, DDL and one set-based writer per dialect.

Every writer loads one batch as one transaction, with a constant number of statements per batch
(no per-row round trips to a server):

* SQLite: ``INSERT … ON CONFLICT DO UPDATE`` through ``executemany`` (in-process, no network).
* PostgreSQL: ``COPY`` into a temporary staging table, then one ``INSERT … SELECT … ON CONFLICT``.
* MySQL/MariaDB: ``executemany`` of ``INSERT … ON DUPLICATE KEY UPDATE`` (the drivers send it as
  multi-row inserts).
* Anything else: delete the batch's keys, then ``executemany`` inserts, in one transaction — correct on
  any DB-API driver.

A query failure only ever writes ``<table>_errors``; a status row is written only from a fetched
status, and loading it deletes the trade's error row in the same transaction.
"""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.exceptions import AirflowException

from vexora_provider.models import TERMINAL_STATES, PayoutQueryError, PayoutStatus

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

__all__ = [
    "ERROR_COLUMNS",
    "STATUS_COLUMNS",
    "ErrorRow",
    "StatusRow",
    "TableName",
    "WarehouseError",
    "WarehouseWriter",
    "error_row",
    "query_error_row",
    "status_row",
    "writer_for",
]

STATUS_COLUMNS: tuple[str, ...] = (
    "merchant_no",
    "trade_no",
    "platform_trade_no",
    "status_code",
    "state",
    "message",
    "amount",
    "order_amount",
    "pay_amount",
    "success_time",
    "fetched_at",
    "raw",
)
ERROR_COLUMNS: tuple[str, ...] = ("merchant_no", "trade_no", "error_type", "error", "attempts", "failed_at")
KEY_COLUMNS: tuple[str, str] = ("merchant_no", "trade_no")

# Postgres allows 63-byte identifiers, MySQL 64; keep room for the "_errors" suffix.
_NAME_PART = r"[A-Za-z_][A-Za-z0-9_]{0,55}"
_TABLE_RE = re.compile(rf"(?:({_NAME_PART})\.)?({_NAME_PART})")
_AMOUNT_SCALE = Decimal("0.0001")
_AMOUNT_LIMIT = Decimal(10) ** 16  # numeric(20,4): 16 digits before the point
_MAX_ERROR_TEXT = 1000
_MAX_ERROR_TRADE_NO = 255  # an invalid trade number may be arbitrarily long; the key column is not
# Column type oids binary COPY may write into: text (or varchar), numeric, timestamptz.
_PG_TEXT, _PG_NUMERIC, _PG_TIMESTAMPTZ = frozenset({25, 1043}), frozenset({1700}), frozenset({1184})
_PG_BINARY_TYPES = (_PG_TEXT,) * 6 + (_PG_NUMERIC,) * 3 + (_PG_TIMESTAMPTZ,) * 2 + (_PG_TEXT,)
_BACKTICK_DIALECTS = frozenset({"mysql", "mariadb"})
_IN_CHUNK = 500  # keys per IN (...) list: well under every driver's bind-parameter limit

StatusRow = tuple[Any, ...]
ErrorRow = tuple[Any, ...]


class WarehouseError(AirflowException):
    """
    A statement against the warehouse failed; the message names the table and batch, never row values.

    :param message: what failed, without parameters.
    """


@dataclass(frozen=True, slots=True)
class TableName:
    """
    A validated ``[schema.]table`` name; anything else is refused before any SQL runs.

    :param schema: the schema, or ``None`` for the connection's default.
    :param name: the table name.
    """

    schema: str | None
    name: str

    @classmethod
    def parse(cls, value: object) -> TableName:
        """Validate ``[schema.]name`` made of ``[A-Za-z_][A-Za-z0-9_]*`` parts (at most 56 characters)."""
        match = _TABLE_RE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError(
                f"table {value!r} is not a plain [schema.]name: each part must match "
                "[A-Za-z_][A-Za-z0-9_]* and be at most 56 characters"
            )
        return cls(schema=match.group(1), name=match.group(2))

    @property
    def errors(self) -> TableName:
        """The table that records failed lookups: ``<table>_errors`` in the same schema."""
        return TableName(self.schema, f"{self.name}_errors")

    def quoted(self, quote: str) -> str:
        """Return the name quoted with ``quote`` (``"`` or a backtick), schema first."""
        parts = (self.schema, self.name) if self.schema else (self.name,)
        return ".".join(f"{quote}{part}{quote}" for part in parts)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def _amount(value: Decimal | None) -> Decimal | None:
    # numeric(20,4) everywhere: round once here so every dialect stores the same value.
    if value is None:
        return None
    try:
        scaled = value.quantize(_AMOUNT_SCALE, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        scaled = None
    if scaled is None or abs(scaled) >= _AMOUNT_LIMIT:
        raise ValueError(f"amount {value} does not fit numeric(20,4)")
    return scaled


def status_row(merchant_no: str, status: PayoutStatus, fetched_at: datetime) -> StatusRow:
    """Return the row for a fetched status; raise :class:`ValueError` if an amount does not fit."""
    success_time = status.success_time.astimezone(UTC) if status.success_time else None
    return (
        merchant_no,
        status.trade_no,
        status.platform_trade_no,
        status.status_code,
        status.state.value,
        status.message,
        _amount(status.amount),
        _amount(status.order_amount),
        _amount(status.pay_amount),
        success_time,
        fetched_at,
        status.raw_json(),
    )


def error_row(
    merchant_no: str, trade_no: object, *, error_type: str, error: str, attempts: int, failed_at: datetime
) -> ErrorRow:
    """Return the ``<table>_errors`` row for a trade whose status could not be fetched or stored."""
    return (
        merchant_no,
        str(trade_no)[:_MAX_ERROR_TRADE_NO],
        error_type,
        error[:_MAX_ERROR_TEXT],
        attempts,
        failed_at,
    )


def query_error_row(merchant_no: str, failure: PayoutQueryError, failed_at: datetime) -> ErrorRow:
    """Return the ``<table>_errors`` row for a :class:`PayoutQueryError` from the hook."""
    return error_row(
        merchant_no,
        failure.trade_no,
        error_type=failure.error_type,
        error=failure.message,
        attempts=failure.attempts,
        failed_at=failed_at,
    )


def dedupe_latest(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Keep the last row per (merchant_no, trade_no): a batch may hold the same trade twice."""
    latest = {(row[0], row[1]): row for row in rows}
    return rows if len(latest) == len(rows) else list(latest.values())


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _describe(exc: BaseException) -> str:
    # Driver messages can carry row values (MySQL "Duplicate entry '…'", Postgres DETAIL lines);
    # keep only the primary line, and prefer Postgres' primary message which never has them.
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) or (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {primary[:300]}"


class WarehouseWriter(ABC):
    """
    Owns one DB-API connection (use it from one thread) and writes batches to one table.

    :param hook: any common-sql :class:`DbApiHook`.
    :param table: the validated status table; errors go to ``<table>_errors``.
    """

    dialect: ClassVar[str] = "generic"
    quote: str = '"'
    placeholder: str = "%s"
    text_key = "VARCHAR(255)"
    text = "TEXT"
    numeric = "NUMERIC(20,4)"
    timestamp = "TIMESTAMP"

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        self.hook = hook
        self.table = table
        self.status_sql = table.quoted(self.quote)
        self.errors_sql = table.errors.quoted(self.quote)
        self._conn: Any = None

    # -- connection and transactions -----------------------------------------------------------
    @property
    def conn(self) -> Any:
        """The connection, opened on first use in the calling thread."""
        if self._conn is None:
            self._conn = self.hook.get_conn()
            self._prepare(self._conn)
        return self._conn

    def _prepare(self, conn: Any) -> None:
        """Configure a new connection (pragmas, autocommit off)."""
        # DB-API connections start outside autocommit anyway; some drivers have no such attribute.
        with contextlib.suppress(AttributeError, NotImplementedError):
            self.hook.set_autocommit(conn, False)

    def _begin(self, cur: Any) -> None:  # noqa: B027 - a hook with a sensible default
        """Start a write transaction (implicit in most drivers)."""

    def close(self) -> None:
        """Close the connection, discarding any open transaction."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.rollback()
            finally:
                conn.close()

    def _run(self, what: str, work: Any) -> Any:
        """Run ``work(cursor)`` in one transaction; wrap failures without row values."""
        conn = self.conn
        cur = conn.cursor()
        try:
            self._begin(cur)
            result = work(cur)
            conn.commit()
            return result
        except Exception as exc:
            with contextlib.suppress(Exception):  # the original error is what matters
                conn.rollback()
            raise WarehouseError(
                f"{what} on {self.table} ({self.dialect}) failed: {_describe(exc)}"
            ) from None
        finally:
            cur.close()

    # -- SQL building blocks ---------------------------------------------------------------------
    def _columns(self, columns: Sequence[str]) -> str:
        return ", ".join(f"{self.quote}{c}{self.quote}" for c in columns)

    def _marks(self, count: int) -> str:
        return ", ".join([self.placeholder] * count)

    def ddl(self) -> list[str]:
        """Return ``CREATE TABLE IF NOT EXISTS`` statements for the status and errors tables."""
        key = f"PRIMARY KEY ({self._columns(KEY_COLUMNS)})"
        q = self.quote
        status_types = {
            "merchant_no": f"{self.text_key} NOT NULL",
            "trade_no": f"{self.text_key} NOT NULL",
            "platform_trade_no": self.text,
            "status_code": self.text,
            "state": self.text,
            "message": self.text,
            "amount": self.numeric,
            "order_amount": self.numeric,
            "pay_amount": self.numeric,
            "success_time": self.timestamp,
            "fetched_at": f"{self.timestamp} NOT NULL",
            "raw": self.text,
        }
        error_types = {
            "merchant_no": f"{self.text_key} NOT NULL",
            "trade_no": f"{self.text_key} NOT NULL",
            "error_type": self.text,
            "error": self.text,
            "attempts": "INTEGER",
            "failed_at": f"{self.timestamp} NOT NULL",
        }
        return [
            f"CREATE TABLE IF NOT EXISTS {name} ("
            + ", ".join(f"{q}{col}{q} {kind}" for col, kind in types.items())
            + f", {key})"
            for name, types in ((self.status_sql, status_types), (self.errors_sql, error_types))
        ]

    def adapt_status(self, row: StatusRow) -> StatusRow:
        """Convert a row's values to what this driver stores (default: unchanged)."""
        return row

    def adapt_error(self, row: ErrorRow) -> ErrorRow:
        """Convert an error row's values to what this driver stores (default: unchanged)."""
        return row

    # -- operations ------------------------------------------------------------------------------
    def create_tables(self) -> None:
        """Create the status and errors tables unless they exist."""

        def work(cur: Any) -> None:
            for statement in self.ddl():
                cur.execute(statement)

        self._run("creating the tables", work)

    def first_column(self, sql: str, *, chunk: int = 10_000) -> list[str]:
        """Run a user query and return its first column as strings (NULLs dropped)."""

        def work(cur: Any) -> list[str]:
            cur.execute(sql)
            values: list[str] = []
            while rows := cur.fetchmany(chunk):
                values.extend(str(r[0]) for r in rows if r[0] is not None)
            return values

        result: list[str] = self._run("running trade_nos_sql", work)
        return result

    def terminal_trade_nos(self, merchant_no: str, trade_nos: Sequence[str]) -> set[str]:
        """Return which of ``trade_nos`` the table already holds in a terminal state."""
        states = sorted(s.value for s in TERMINAL_STATES)

        def work(cur: Any) -> set[str]:
            found: set[str] = set()
            for part in _chunks(list(dict.fromkeys(trade_nos)), _IN_CHUNK):
                cur.execute(
                    f"SELECT {self._columns(['trade_no'])} FROM {self.status_sql} "
                    f"WHERE {self._columns(['merchant_no'])} = {self.placeholder} "
                    f"AND {self._columns(['state'])} IN ({self._marks(len(states))}) "
                    f"AND {self._columns(['trade_no'])} IN ({self._marks(len(part))})",
                    (merchant_no, *states, *part),
                )
                found.update(str(r[0]) for r in cur.fetchall())
            return found

        result: set[str] = self._run("reading terminal trades", work)
        return result

    def write_batch(self, statuses: list[StatusRow], errors: list[ErrorRow], *, batch: int) -> None:
        """
        Upsert a batch in one transaction; rows must come from :meth:`adapt_status`/:meth:`adapt_error`.

        Rows are converted as they arrive (on the fetch side), so a batch only costs SQL here.
        """
        rows = dedupe_latest(statuses)
        failed = dedupe_latest(errors)
        self._run(
            f"writing batch {batch} ({len(rows)} rows, {len(failed)} errors)",
            lambda cur: self._write(cur, rows, failed),
        )

    @abstractmethod
    def _write(self, cur: Any, rows: list[StatusRow], errors: list[ErrorRow]) -> None:
        """Write deduplicated rows inside the open transaction."""

    def _delete_keys(self, cur: Any, table_sql: str, keys: Sequence[tuple[Any, ...]]) -> None:
        by_merchant: dict[Any, list[Any]] = {}
        for key in keys:
            by_merchant.setdefault(key[0], []).append(key[1])
        for merchant_no, trade_nos in by_merchant.items():
            for part in _chunks(trade_nos, _IN_CHUNK):
                cur.execute(
                    f"DELETE FROM {table_sql} WHERE {self._columns(['merchant_no'])} = {self.placeholder} "
                    f"AND {self._columns(['trade_no'])} IN ({self._marks(len(part))})",
                    (merchant_no, *part),
                )

    def _insert_sql(self, table_sql: str, columns: Sequence[str]) -> str:
        return f"INSERT INTO {table_sql} ({self._columns(columns)}) VALUES ({self._marks(len(columns))})"


class GenericWriter(WarehouseWriter):
    """Delete-then-insert in one transaction: correct on any DB-API driver and SQL dialect."""

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        # MySQL reads "x" as a string unless ANSI_QUOTES is on: quote its own way even here.
        self.quote = "`" if _dialect_name(hook).lower() in _BACKTICK_DIALECTS else '"'
        super().__init__(hook, table)
        self.placeholder = hook.placeholder

    def adapt_status(self, row: StatusRow) -> StatusRow:
        # TIMESTAMP without time zone is the portable type: store naive UTC.
        return (*row[:9], _naive(row[9]), _naive(row[10]), row[11])

    def adapt_error(self, row: ErrorRow) -> ErrorRow:
        return (*row[:5], _naive(row[5]))

    def _write(self, cur: Any, rows: list[StatusRow], errors: list[ErrorRow]) -> None:
        self._delete_keys(cur, self.status_sql, rows)
        self._delete_keys(cur, self.errors_sql, [*rows, *errors])
        if rows:
            cur.executemany(self._insert_sql(self.status_sql, STATUS_COLUMNS), rows)
        if errors:
            cur.executemany(self._insert_sql(self.errors_sql, ERROR_COLUMNS), errors)


def _naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def _update_set(columns: Sequence[str], quote: str, template: str) -> str:
    return ", ".join(
        f"{quote}{c}{quote} = " + template.format(col=f"{quote}{c}{quote}")
        for c in columns
        if c not in KEY_COLUMNS
    )


class SqliteWriter(WarehouseWriter):
    """
    SQLite: ``executemany`` upserts inside ``BEGIN IMMEDIATE`` with a busy timeout.

    Amounts are stored as TEXT with four decimals: SQLite has no decimal type, and NUMERIC affinity
    would turn them into binary floats (15 significant digits). Times are ISO-8601 UTC text
    (``YYYY-MM-DD HH:MM:SS.ffffff+00:00``), which sorts and which SQLite's date functions read.
    """

    dialect = "sqlite"
    placeholder = "?"
    text_key = "TEXT"
    numeric = "TEXT"
    timestamp = "TEXT"
    busy_timeout_ms = 60_000

    def _prepare(self, conn: Any) -> None:
        if not sqlite_version_ok():
            raise WarehouseError(f"SQLite {sqlite3.sqlite_version} has no upsert; 3.24 or newer is needed")
        # Explicit transactions: the sqlite3 module's implicit BEGIN is DEFERRED, and a deferred
        # transaction that upgrades to a write lock cannot wait on busy_timeout.
        conn.isolation_level = None
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        super().__init__(hook, table)
        self._last_time: datetime | None = None
        self._last_text: str | None = None

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
        key = self._columns(KEY_COLUMNS)
        if rows:
            cur.executemany(
                self._insert_sql(self.status_sql, STATUS_COLUMNS)
                + f" ON CONFLICT ({key}) DO UPDATE SET "
                + _update_set(STATUS_COLUMNS, self.quote, "excluded.{col}"),
                rows,
            )
        # BEGIN IMMEDIATE holds the write lock, so "no error rows" stays true until COMMIT: the
        # usual case (nothing failed before) then skips the keyed deletes.
        cur.execute(f"SELECT 1 FROM {self.errors_sql} LIMIT 1")
        if cur.fetchone() is not None:
            self._delete_keys(cur, self.errors_sql, rows)
        if errors:
            cur.executemany(
                self._insert_sql(self.errors_sql, ERROR_COLUMNS)
                + f" ON CONFLICT ({key}) DO UPDATE SET "
                + _update_set(ERROR_COLUMNS, self.quote, "excluded.{col}"),
                errors,
            )


def _text(value: Decimal | None) -> str | None:
    # Amounts come from status_row() quantized to 4 places, where str() never uses an exponent.
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(sep=" ", timespec="microseconds")


class PostgresWriter(WarehouseWriter):
    """PostgreSQL: COPY into a temporary staging table, then one ``INSERT … SELECT … ON CONFLICT``."""

    dialect = "postgresql"
    text_key = "TEXT"
    timestamp = "TIMESTAMPTZ"
    stage = "_vexora_stage"

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        super().__init__(hook, table)
        self._binary_types: list[int] | None = None  # decided once per writer

    def _write(self, cur: Any, rows: list[StatusRow], errors: list[ErrorRow]) -> None:
        q = self.quote
        cols = self._columns(STATUS_COLUMNS)
        key = self._columns(KEY_COLUMNS)
        if rows:
            # Session-local, emptied at every commit; created on the first batch of a connection.
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ON COMMIT DELETE ROWS AS "
                f"SELECT {cols} FROM {self.status_sql} WITH NO DATA"
            )
            self._copy(cur, f"COPY {self.stage} ({cols}) FROM STDIN", rows)
            cur.execute(
                f"INSERT INTO {self.status_sql} ({cols}) SELECT {cols} FROM {self.stage} "
                f"ON CONFLICT ({key}) DO UPDATE SET {_update_set(STATUS_COLUMNS, q, 'EXCLUDED.{col}')}"
            )
            cur.execute(
                f"DELETE FROM {self.errors_sql} e USING {self.stage} s "
                f"WHERE e.{q}merchant_no{q} = s.{q}merchant_no{q} AND e.{q}trade_no{q} = s.{q}trade_no{q}"
            )
        for part in _chunks(errors, _IN_CHUNK):
            values = ", ".join([f"({self._marks(len(ERROR_COLUMNS))})"] * len(part))
            cur.execute(
                f"INSERT INTO {self.errors_sql} ({self._columns(ERROR_COLUMNS)}) VALUES {values} "
                f"ON CONFLICT ({key}) DO UPDATE SET {_update_set(ERROR_COLUMNS, q, 'EXCLUDED.{col}')}",
                [value for row in part for value in row],
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


class MySqlWriter(WarehouseWriter):
    """MySQL/MariaDB: ``INSERT … ON DUPLICATE KEY UPDATE`` sent by the driver as multi-row inserts."""

    dialect = "mysql"
    quote = "`"
    # Binary collation: MySQL's default one is case-insensitive, which would merge "ab" and "AB".
    text_key = "VARCHAR(255) COLLATE utf8mb4_bin"
    text = "LONGTEXT"
    numeric = "DECIMAL(20,4)"
    timestamp = "DATETIME(6)"

    def adapt_status(self, row: StatusRow) -> StatusRow:
        return (*row[:9], _naive(row[9]), _naive(row[10]), row[11])

    def adapt_error(self, row: ErrorRow) -> ErrorRow:
        return (*row[:5], _naive(row[5]))

    def ddl(self) -> list[str]:
        # utf8mb4 keeps any text; InnoDB for transactions.
        return [f"{s} ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" for s in super().ddl()]

    def _write(self, cur: Any, rows: list[StatusRow], errors: list[ErrorRow]) -> None:
        if rows:
            cur.executemany(
                self._insert_sql(self.status_sql, STATUS_COLUMNS)
                + f" ON DUPLICATE KEY UPDATE {_update_set(STATUS_COLUMNS, self.quote, 'VALUES({col})')}",
                rows,
            )
        self._delete_keys(cur, self.errors_sql, rows)
        if errors:
            cur.executemany(
                self._insert_sql(self.errors_sql, ERROR_COLUMNS)
                + f" ON DUPLICATE KEY UPDATE {_update_set(ERROR_COLUMNS, self.quote, 'VALUES({col})')}",
                errors,
            )


_WRITERS: dict[str, type[WarehouseWriter]] = {
    "sqlite": SqliteWriter,
    "postgresql": PostgresWriter,
    "postgres": PostgresWriter,
    "mysql": MySqlWriter,
    "mariadb": MySqlWriter,
}


def writer_for(hook: DbApiHook, table: TableName, *, dialect: str | None = None) -> WarehouseWriter:
    """Pick the fast writer for the hook's dialect, or the generic one (``dialect="generic"`` forces it)."""
    name = (dialect or _dialect_name(hook)).lower()
    return _WRITERS.get(name, GenericWriter)(hook, table)


def _dialect_name(hook: DbApiHook) -> str:
    try:
        return str(hook.dialect_name)
    except Exception:  # some hooks derive it from a SQLAlchemy URL they cannot build
        return str(getattr(hook, "conn_type", "") or "generic")


def sqlite_version_ok() -> bool:
    """Whether the linked SQLite supports ``ON CONFLICT … DO UPDATE`` (3.24+)."""
    return sqlite3.sqlite_version_info >= (3, 24, 0)
