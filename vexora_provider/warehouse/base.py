"""What every warehouse writer shares: the connection, transactions and their retries, the tables.

Each dialect module subclasses :class:`~vexora_provider.warehouse.batch.WarehouseWriter` (this
class plus the batch logic) with its column types, value conversions and the statements of one
batch.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow.sdk.exceptions import AirflowException

from vexora_provider.warehouse.failures import CONFLICT_ATTEMPTS, Failure, backoff, classify
from vexora_provider.warehouse.names import TableName
from vexora_provider.warehouse.rows import ERROR_COLUMNS, STATUS_COLUMNS, ErrorRow, StatusRow
from vexora_provider.warehouse.schema import (
    AMOUNT_COLUMNS,
    LEGACY_AMOUNT,
    ColumnTypes,
    create_table_statements,
)
from vexora_provider.warehouse.sql import Key, by_merchant, chunks, quote_columns
from vexora_provider.warehouse.values import (
    AmountColumn,
    UnstorableValueError,
    amount_column_for,
    check_text,
    decimal_column,
    naive_utc,
)

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

__all__ = [
    "NaiveUtcTimes",
    "WarehouseDataError",
    "WarehouseError",
    "WriterBase",
    "describe",
    "dialect_name",
]

# A quoted run in a driver message: '…' (MySQL, SQLite), "…" (PostgreSQL) or `…`.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_TEXT_FIELDS = ("merchant_no", "trade_no", "platform_trade_no", "status_code", "state", "message", "raw")

T = TypeVar("T")


class WarehouseError(AirflowException):
    """
    A statement against the warehouse failed; the message names the table and batch, never row values.

    :param message: what failed, without parameters.
    :param reason: the database's one-line reason (values masked).
    """

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class WarehouseDataError(WarehouseError):
    """The database refused a value of the batch (one row's data, not the database itself)."""


def describe(exc: BaseException, identifiers: frozenset[str] = frozenset()) -> str:
    """Return the driver's primary error line with every quoted run but ``identifiers`` masked."""
    # Driver messages can carry row values: MySQL's primary line does ("Duplicate entry '…'",
    # "Incorrect decimal value: '…'"), PostgreSQL's sometimes ('invalid input syntax for type
    # numeric: "…"') besides its DETAIL lines. Keep the primary line only, and mask what is quoted
    # in it unless it names one of our own tables or columns.
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) or (str(exc).splitlines() or [""])[0]

    def mask(match: re.Match[str]) -> str:
        quoted = match.group(0)
        return quoted if quoted[1:-1].rsplit(".", 1)[-1] in identifiers else f"{quoted[0]}…{quoted[-1]}"

    if isinstance(exc, UnicodeEncodeError | UnicodeDecodeError):  # its message quotes the text
        primary = f"{exc.reason} ({exc.encoding})"
    return f"{type(exc).__name__}: {_QUOTED.sub(mask, primary[:300])}"


def dialect_name(hook: DbApiHook) -> str:
    """Return the hook's SQL dialect name, or its connection type when it cannot tell."""
    try:
        return str(hook.dialect_name)
    except Exception:  # some hooks derive it from a SQLAlchemy URL they cannot build
        return str(getattr(hook, "conn_type", "") or "generic")


class WriterBase:
    """
    Owns one DB-API connection (use it from one thread) and the tables it writes.

    :param hook: any common-sql :class:`DbApiHook`.
    :param table: the validated status table; errors go to ``<table>_errors``.
    """

    dialect: ClassVar[str] = "generic"
    types: ClassVar[ColumnTypes] = ColumnTypes()
    #: What an amount column of this dialect's own DDL holds (until the live table says otherwise).
    amount_column: ClassVar[AmountColumn] = decimal_column(38, 18, "NUMERIC")
    #: What a ``NUMERIC`` without precision holds here (for tables created by hand).
    unconstrained_numeric: ClassVar[AmountColumn] = decimal_column(38, 18, "NUMERIC")
    #: Who cannot store NUL in text (names the cause in the error row), ``None`` if it can.
    nul_refused_by: ClassVar[str | None] = None
    key_max_chars: ClassVar[int | None] = None
    #: Whether a unique-key violation means another writer inserted the key first (retry).
    integrity_is_conflict: ClassVar[bool] = False
    quote: str = '"'
    placeholder: str = "%s"

    def __init__(self, hook: DbApiHook, table: TableName) -> None:
        self.hook = hook
        self.table = table
        self.status_sql = table.quoted(self.quote)
        self.errors_sql = table.errors.quoted(self.quote)
        # Names a driver message may quote and that are safe to show (MySQL's key is 'PRIMARY').
        self._identifiers = frozenset(
            {table.schema or "", table.name, table.errors.name, *STATUS_COLUMNS, *ERROR_COLUMNS, "PRIMARY"}
        )
        self.amounts: dict[str, AmountColumn] = dict.fromkeys(AMOUNT_COLUMNS, self.amount_column)
        #: Transactions run again because the database aborted them for a conflict.
        self.conflict_retries = 0
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
        """Configure a new connection (pragmas, autocommit off, isolation)."""
        # DB-API connections start outside autocommit anyway; some drivers have no such attribute.
        with contextlib.suppress(AttributeError, NotImplementedError):
            self.hook.set_autocommit(conn, False)

    def _begin(self, cur: Any) -> None:
        """Start a write transaction (implicit in most drivers)."""

    def _after_rollback(self) -> None:
        """Forget what the rolled-back transaction created (default: nothing)."""

    def close(self) -> None:
        """Close the connection, discarding any open transaction; never raises."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # Called in a ``finally`` after a failure, often on a connection that broke: a raw
            # driver error from here would replace the WarehouseError that says what failed.
            with contextlib.suppress(Exception):
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()

    def _attempt(self, work: Callable[[Any], T]) -> T:
        conn = self.conn
        cur = conn.cursor()
        try:
            self._begin(cur)
            result = work(cur)
            conn.commit()
            return result
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is what matters
                conn.rollback()
            self._after_rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def _run(self, what: str, work: Callable[[Any], T]) -> T:
        """
        Run ``work(cursor)`` in one transaction; run it again when a conflict aborted it.

        Raises :class:`WarehouseDataError` when the database refused a value, and
        :class:`WarehouseError` for anything else, with the driver's reason and no row values.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(work)
            except Exception as exc:
                kind: Failure = classify(exc, integrity_is_conflict=self.integrity_is_conflict)
                if kind == "conflict" and attempt < CONFLICT_ATTEMPTS:
                    self.conflict_retries += 1
                    time.sleep(backoff(attempt))
                    continue
                if kind == "conflict" and self.integrity_is_conflict:
                    kind = classify(exc)  # retries spent: a duplicate key is then the data's
                reason = describe(exc, self._identifiers)
                message = f"{what} on {self.table} ({self.dialect}) failed: {reason}"
                if kind == "conflict":
                    message += f" (still conflicting after {CONFLICT_ATTEMPTS} tries)"
                error = WarehouseDataError if kind == "data" else WarehouseError
                raise error(message, reason=reason) from None

    # -- SQL building blocks ---------------------------------------------------------------------
    def _columns(self, columns: Sequence[str], prefix: str = "") -> str:
        return quote_columns(list(columns), self.quote, prefix)

    def _col(self, column: str, prefix: str = "") -> str:
        return f"{prefix}{self.quote}{column}{self.quote}"

    def _marks(self, count: int) -> str:
        return ", ".join([self.placeholder] * count)

    def _keyed(
        self,
        cur: Any,
        head: str,
        keys: Sequence[Key],
        *,
        tail: str = "",
        alias: str = "",
        fetch: bool = False,
    ) -> list[tuple[Any, ...]]:
        """
        Run ``<head> WHERE merchant_no = ? AND trade_no IN (…)<tail>`` over ``keys``, 500 at a time.

        :param alias: prefix of the key columns (``"e."``).
        :param fetch: collect and return the rows each statement returns.
        """
        found: list[tuple[Any, ...]] = []
        for merchant_no, trade_nos in by_merchant(keys).items():
            for part in chunks(trade_nos):
                cur.execute(
                    f"{head} WHERE {self._col('merchant_no', alias)} = {self.placeholder} "
                    f"AND {self._col('trade_no', alias)} IN ({self._marks(len(part))}){tail}",
                    (merchant_no, *part),
                )
                if fetch:
                    found.extend(cur.fetchall())
        return found

    def _insert_sql(self, table_sql: str, columns: Sequence[str]) -> str:
        return f"INSERT INTO {table_sql} ({self._columns(columns)}) VALUES ({self._marks(len(columns))})"

    def ddl(self) -> list[str]:
        """Return ``CREATE TABLE IF NOT EXISTS`` statements for the status and errors tables."""
        return create_table_statements(self.status_sql, self.errors_sql, self.quote, self.types)

    # -- tables ----------------------------------------------------------------------------------
    def create_tables(self) -> None:
        """Create the status and errors tables unless they exist; widen old amount columns."""
        self.prepare_tables(create=True)

    def prepare_tables(self, *, create: bool) -> None:
        """Create (when ``create``) the tables, then read what their amount columns hold."""
        if create:

            def work(cur: Any) -> None:
                with self._ddl_lock(cur):
                    for statement in self.ddl():
                        cur.execute(statement)
                    self._migrate(cur)

            self._run("creating the tables", work)
        with contextlib.suppress(WarehouseError):  # a database without information_schema
            self.amounts.update(self._run("reading the amount columns' types", self._read_amount_columns))

    @contextlib.contextmanager
    def _ddl_lock(self, cur: Any) -> Iterator[None]:
        """Serialise table creation between writers (default: the database's own locking)."""
        yield

    #: ``information_schema`` type of the amount columns earlier versions created (``None``: none).
    legacy_amount_type: ClassVar[str | None] = None

    def _migrate(self, cur: Any) -> None:
        """Widen the amount columns of a table an earlier version created, keeping every row."""
        if self.legacy_amount_type is None:
            return
        legacy = [
            column
            for column, (kind, precision, scale) in self._amount_types(cur).items()
            if kind == self.legacy_amount_type and (precision, scale) == LEGACY_AMOUNT
        ]
        if legacy:
            cur.execute(f"ALTER TABLE {self.status_sql} " + ", ".join(self._widen(c) for c in legacy))

    def _widen(self, column: str) -> str:
        """The ``ALTER TABLE`` clause giving ``column`` this dialect's amount type."""
        raise NotImplementedError

    def _current_schema_sql(self) -> str | None:
        """SQL for the connection's default schema, or ``None`` when unknown."""
        return None

    def current_schema(self) -> str | None:
        """The schema an unqualified table name resolves to here, ``None`` when the dialect cannot say."""
        sql = self._current_schema_sql()
        if sql is None:
            return None

        def work(cur: Any) -> str | None:
            cur.execute(f"SELECT {sql}")
            row = cur.fetchone()
            return None if row is None or row[0] is None else str(row[0])

        return self._run("reading the current schema", work)

    def _amount_types(self, cur: Any) -> dict[str, tuple[str, int | None, int | None]]:
        """``column -> (data_type, precision, scale)`` of the amount columns, from information_schema."""
        schema = self.table.schema
        condition, params = "table_name = " + self.placeholder, [self.table.name]
        if schema is not None:
            condition += " AND table_schema = " + self.placeholder
            params.append(schema)
        elif (current := self._current_schema_sql()) is not None:
            condition += f" AND table_schema = {current}"
        cur.execute(
            "SELECT column_name, data_type, numeric_precision, numeric_scale "
            f"FROM information_schema.columns WHERE {condition}",
            params,
        )
        found = {str(r[0]).lower(): (str(r[1]), r[2], r[3]) for r in cur.fetchall()}
        return {c: found[c] for c in AMOUNT_COLUMNS if c in found}

    def _read_amount_columns(self, cur: Any) -> dict[str, AmountColumn]:
        columns: dict[str, AmountColumn] = {}
        for name, (kind, precision, scale) in self._amount_types(cur).items():
            column = amount_column_for(kind, precision, scale, self.unconstrained_numeric)
            if column is not None:
                columns[name] = column
        return columns

    # -- value conversion (on the fetch side, as rows arrive) -----------------------------------
    def storable_key(self, trade_no: object) -> bool:
        """Whether ``trade_no`` can be a key of the status table here."""
        if not isinstance(trade_no, str) or (self.key_max_chars and len(trade_no) > self.key_max_chars):
            return False
        try:
            check_text("trade_no", trade_no, nul_refused_by=self.nul_refused_by)
        except ValueError:
            return False
        return True

    def adapt_status(self, row: StatusRow) -> StatusRow:
        """
        Check that the table holds every value of ``row`` exactly, and convert them for the driver.

        :raises UnstorableValueError: naming the field and the cause.
        """
        nul = self.nul_refused_by
        for field in _TEXT_FIELDS:
            check_text(field, getattr(row, field), nul_refused_by=nul)
        if self.key_max_chars and len(row.trade_no) > self.key_max_chars:
            raise UnstorableValueError("trade_no", f"longer than the key's {self.key_max_chars} characters")
        amounts = self.amounts
        amounts["amount"].check("amount", row.amount)
        amounts["order_amount"].check("order_amount", row.order_amount)
        amounts["pay_amount"].check("pay_amount", row.pay_amount)
        return self._convert_status(row)

    def _convert_status(self, row: StatusRow) -> StatusRow:
        """Convert a checked row's values to what the driver stores (default: unchanged)."""
        return row

    def adapt_error(self, row: ErrorRow) -> ErrorRow:
        """Convert an error row's values to what this driver stores (default: unchanged)."""
        return row

    # -- reads -----------------------------------------------------------------------------------
    def first_column(self, sql: str, *, chunk: int = 10_000) -> list[object]:
        """Run a user query and return its first column as the driver gives it (NULLs included)."""

        def work(cur: Any) -> list[object]:
            cur.execute(sql)
            values: list[object] = []
            while rows := cur.fetchmany(chunk):
                values.extend(r[0] for r in rows)
            return values

        return self._run("running trade_nos_sql", work)


class NaiveUtcTimes:
    """Value conversion for ``TIMESTAMP``/``DATETIME`` columns without a zone: naive UTC."""

    def _naive_times(self, row: StatusRow) -> StatusRow:
        return row._replace(success_time=naive_utc(row.success_time), fetched_at=naive_utc(row.fetched_at))

    def adapt_error(self, row: ErrorRow) -> ErrorRow:
        """Store ``failed_at`` as naive UTC."""
        return row._replace(failed_at=naive_utc(row.failed_at))
