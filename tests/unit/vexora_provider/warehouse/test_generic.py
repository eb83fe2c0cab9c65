from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.unit.vexora_provider.warehouse.support import FakeSqliteHook, rows_for, statements
from vexora_provider.warehouse import GenericWriter, TableName


class TestGenericWriter:
    def test_lock_read_then_delete_and_insert_the_winners(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The generic path passes Decimal, as DB-API drivers expect; sqlite3 needs to be taught it.
        adapters: dict[Any, Any] = sqlite3.adapters
        monkeypatch.setitem(adapters, (Decimal, sqlite3.PrepareProtocol), str)
        writer = GenericWriter(FakeSqliteHook(tmp_path / "g.db"), TableName.parse("gt"))  # type: ignore[arg-type]
        writer.create_tables()
        for attempt in range(2):
            writer.write_batch(rows_for(1200, writer=writer), [], batch=attempt)
        assert writer.conn.execute("SELECT count(*) FROM gt").fetchone() == (1200,)
        # 3 chunks (500 keys per IN list) each: lock, read, delete the replaced; one insert; then
        # the errors table's obsolete rows, in the batch and again after the commit.
        assert (
            statements(writer, 1200)
            == ["UPDATE"] * 3 + ["SELECT"] * 3 + ["DELETE"] * 3 + ["INSERT*"] + ["DELETE"] * 6
        )
        stored = writer.conn.execute("SELECT success_time, fetched_at FROM gt LIMIT 1").fetchone()
        assert stored == ("2026-01-02 09:00:00", "2026-03-01 12:00:00")  # naive UTC

    def test_quotes_with_double_quotes_and_uses_hook_placeholder(self) -> None:
        hook = mock.Mock(placeholder="?")
        writer = GenericWriter(hook, TableName.parse("s.t"))
        assert writer.ddl()[0].startswith('CREATE TABLE IF NOT EXISTS "s"."t" ("merchant_no" VARCHAR(255)')
        assert '"amount" NUMERIC(38,18)' in writer.ddl()[0]
        assert '"fetched_at" TIMESTAMP(6) NOT NULL' in writer.ddl()[0]
        assert (
            writer._insert_sql(writer.status_sql, ["a", "b"])
            == 'INSERT INTO "s"."t" ("a", "b") VALUES (?, ?)'
        )

    def test_backticks_for_mysql(self) -> None:
        writer = GenericWriter(mock.Mock(dialect_name="mysql", placeholder="%s"), TableName.parse("t"))
        assert writer.status_sql == "`t`"
