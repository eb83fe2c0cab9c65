"""What every warehouse writer shares: the connection, one transaction per call, the SQL pieces.

Each dialect module subclasses :class:`WarehouseWriter` with its column types, its value
conversions and its ``_write`` (the upsert of one batch).
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow.sdk.exceptions import AirflowException

from vexora_provider.models import TERMINAL_STATES
from vexora_provider.warehouse.names import TableName
from vexora_provider.warehouse.rows import (
    ERROR_COLUMNS,
    KEY_COLUMNS,
    STATUS_COLUMNS,
    ErrorRow,
    StatusRow,
    dedupe_latest,
)
from vexora_provider.warehouse.schema import ColumnTypes, create_table_statements, quote_columns

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

__all__ = ["IN_CHUNK", "NaiveUtcTimes", "WarehouseError", "WarehouseWriter", "chunks", "dialect_name"]

# A quoted run in a driver message: '…' (MySQL, SQLite), "…" (PostgreSQL) or `…`.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
IN_CHUNK = 500  # keys per IN (...) list: well under every driver's bind-parameter limit

T = TypeVar("T")


class WarehouseError(AirflowException):
    """
    A statement against the warehouse failed; the message names the table and batch, never row values.

    :param message: what failed, without parameters.
    """


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of ``items`` of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


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

    return f"{type(exc).__name__}: {_QUOTED.sub(mask, primary[:300])}"


def dialect_name(hook: DbApiHook) -> str:
    """Return the hook's SQL dialect name, or its connection type when it cannot tell."""
    try:
        return str(hook.dialect_name)
    except Exception:  # some hooks derive it from a SQLAlchemy URL they cannot build
        return str(getattr(hook, "conn_type", "") or "generic")


def naive_utc(value: datetime | None) -> datetime | None:
    """Return ``value`` in UTC without tzinfo (for ``TIMESTAMP``/``DATETIME`` columns)."""
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def update_set(columns: Sequence[str], quote: str, template: str) -> str:
    """Return ``col = <template>`` for every non-key column (the SET list of an upsert)."""
    return ", ".join(
        f"{quote}{c}{quote} = " + template.format(col=f"{quote}{c}{quote}")
        for c in columns
        if c not in KEY_COLUMNS
    )


class WarehouseWriter(ABC):
    """
    Owns one DB-API connection (use it from one thread) and writes batches to one table.

    :param hook: any common-sql :class:`DbApiHook`.
    :param table: the validated status table; errors go to ``<table>_errors``.
    """

    dialect: ClassVar[str] = "generic"
    types: ClassVar[ColumnTypes] = ColumnTypes()
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
        """Close the connection, discarding any open transaction; never raises."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # Called in a ``finally`` after a failure, often on a connection that broke: a raw
            # driver error from here would replace the WarehouseError that says what failed.
            with contextlib.suppress(Exception):
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()

    def _run(self, what: str, work: Callable[[Any], T]) -> T:
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
                f"{what} on {self.table} ({self.dialect}) failed: {describe(exc, self._identifiers)}"
            ) from None
        finally:
            cur.close()

    # -- SQL building blocks ---------------------------------------------------------------------
    def _columns(self, columns: Sequence[str]) -> str:
        return quote_columns(list(columns), self.quote)

    def _marks(self, count: int) -> str:
        return ", ".join([self.placeholder] * count)

    def _insert_sql(self, table_sql: str, columns: Sequence[str]) -> str:
        return f"INSERT INTO {table_sql} ({self._columns(columns)}) VALUES ({self._marks(len(columns))})"

    def _on_conflict_update(self, columns: Sequence[str]) -> str:
        """The ``ON CONFLICT … DO UPDATE`` clause (SQLite and PostgreSQL spell it the same)."""
        return f" ON CONFLICT ({self._columns(KEY_COLUMNS)}) DO UPDATE SET " + update_set(
            columns, self.quote, "excluded.{col}"
        )

    def _delete_keys(self, cur: Any, table_sql: str, keys: Sequence[tuple[Any, ...]]) -> None:
        by_merchant: dict[Any, list[Any]] = {}
        for key in keys:
            by_merchant.setdefault(key[0], []).append(key[1])
        for merchant_no, trade_nos in by_merchant.items():
            for part in chunks(trade_nos, IN_CHUNK):
                cur.execute(
                    f"DELETE FROM {table_sql} WHERE {self._columns(['merchant_no'])} = {self.placeholder} "
                    f"AND {self._columns(['trade_no'])} IN ({self._marks(len(part))})",
                    (merchant_no, *part),
                )

    def ddl(self) -> list[str]:
        """Return ``CREATE TABLE IF NOT EXISTS`` statements for the status and errors tables."""
        return create_table_statements(self.status_sql, self.errors_sql, self.quote, self.types)

    # -- value conversion (on the fetch side, as rows arrive) -----------------------------------
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

        return self._run("running trade_nos_sql", work)

    def terminal_trade_nos(self, merchant_no: str, trade_nos: Sequence[str]) -> set[str]:
        """Return which of ``trade_nos`` the table already holds in a terminal state."""
        states = sorted(s.value for s in TERMINAL_STATES)

        def work(cur: Any) -> set[str]:
            found: set[str] = set()
            for part in chunks(list(dict.fromkeys(trade_nos)), IN_CHUNK):
                cur.execute(
                    f"SELECT {self._columns(['trade_no'])} FROM {self.status_sql} "
                    f"WHERE {self._columns(['merchant_no'])} = {self.placeholder} "
                    f"AND {self._columns(['state'])} IN ({self._marks(len(states))}) "
                    f"AND {self._columns(['trade_no'])} IN ({self._marks(len(part))})",
                    (merchant_no, *states, *part),
                )
                found.update(str(r[0]) for r in cur.fetchall())
            return found

        return self._run("reading terminal trades", work)

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


class NaiveUtcTimes:
    """Value conversion for ``TIMESTAMP``/``DATETIME`` columns without a zone: naive UTC."""

    def adapt_status(self, row: StatusRow) -> StatusRow:
        """Store ``success_time`` and ``fetched_at`` as naive UTC."""
        return (*row[:9], naive_utc(row[9]), naive_utc(row[10]), row[11])

    def adapt_error(self, row: ErrorRow) -> ErrorRow:
        """Store ``failed_at`` as naive UTC."""
        return (*row[:5], naive_utc(row[5]))
