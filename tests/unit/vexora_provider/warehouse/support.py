"""Pieces the warehouse unit tests share: a SQLite hook, a statement counter, status rows."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from tests.unit.vexora_provider.operators._fakes import MERCHANT, status
from vexora_provider.warehouse import StatusRow, TableName, status_row
from vexora_provider.warehouse.sqlite import SqliteWriter

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeSqliteHook:
    """The two things a writer asks of a DbApiHook, over a real SQLite file."""

    placeholder = "?"
    dialect_name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def get_conn(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def set_autocommit(self, conn: Any, autocommit: bool) -> None:
        conn.autocommit = autocommit  # sqlite3 has no such attribute before 3.12: writers cope


class CountingCursor:
    """Wraps a cursor and records the first word of every statement (``*`` for executemany)."""

    def __init__(self, inner: Any, calls: list[str]) -> None:
        self.inner, self.calls = inner, calls

    def execute(self, sql: str, params: Any = ()) -> Any:
        self.calls.append(sql.split()[0])
        return self.inner.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        self.calls.append(sql.split()[0] + "*")
        return self.inner.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def sqlite_writer(path: Path, table: str = "st", *, create: bool = True) -> SqliteWriter:
    writer = SqliteWriter(FakeSqliteHook(path), TableName.parse(table))  # type: ignore[arg-type]
    if create:
        writer.create_tables()
    return writer


def rows_for(
    n: int, state: str = "success", start: int = 0, writer: Any = None, fetched_at: datetime = NOW
) -> list[StatusRow]:
    """Status rows, converted for ``writer`` when given (as the operator does on arrival)."""
    rows = [status_row(MERCHANT, status(f"T{i:06d}", state), fetched_at) for i in range(start, start + n)]
    return [writer.adapt_status(r) for r in rows] if writer else rows


def statements(writer: Any, n: int, *, errors: list[Any] | None = None) -> list[str]:
    """The statements one ``write_batch`` of ``n`` rows sends."""
    calls: list[str] = []
    conn = writer.conn
    real_cursor = conn.cursor
    with mock.patch.object(writer, "_conn", mock.Mock(wraps=conn)) as wrapped:
        wrapped.cursor = lambda: CountingCursor(real_cursor(), calls)
        writer.write_batch(rows_for(n, writer=writer), errors or [], batch=1)
    return calls
