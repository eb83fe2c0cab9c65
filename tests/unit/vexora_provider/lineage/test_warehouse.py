"""Warehouse tables as OpenLineage datasets: naming per database, and what trade_nos_sql reads."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.providers.sqlite.hooks.sqlite import SqliteHook

from vexora_provider.lineage.warehouse import TableNaming, naming_for, query_lineage
from vexora_provider.warehouse import TableName, writer_for


@pytest.fixture
def sqlite_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqliteHook:
    monkeypatch.chdir(tmp_path)
    # A relative path: the dataset must name the file SQLite really opened.
    monkeypatch.setenv("AIRFLOW_CONN_WH", json.dumps({"conn_type": "sqlite", "host": "wh.db"}))
    return SqliteHook(sqlite_conn_id="wh")


class TestTableNaming:
    @pytest.mark.parametrize(
        ("naming", "parts", "name"),
        [
            (TableNaming("postgres://h:5432", "postgres", "db", "public"), ("t",), "db.public.t"),
            (TableNaming("postgres://h:5432", "postgres", "db", "public"), ("t", "s"), "db.s.t"),
            (TableNaming("postgres://h:5432", "postgres", "db", "public"), ("t", "s", "x"), "x.s.t"),
            (TableNaming("mysql://h:3306", "mysql", None, "shop"), ("t",), "shop.t"),
            (TableNaming("mysql://h:3306", "mysql", None, "shop"), ("t", "other"), "other.t"),
            (TableNaming("generic", "generic"), ("t",), "t"),
            (TableNaming("file", "sqlite", files={"main": "/d/w.db"}), ("t",), "/d/w.db/t"),
            (
                TableNaming("file", "sqlite", files={"main": "/d/w.db", "aux": "/d/a.db"}),
                ("t", "aux"),
                "/d/a.db/t",
            ),
            (TableNaming("file", "sqlite", files={"main": "/d/w.db"}), ("t", "gone"), "/d/w.db/gone.t"),
        ],
    )
    def test_names(self, naming: TableNaming, parts: tuple[str, ...], name: str) -> None:
        assert naming.name(*parts) == name


class TestNamingFor:
    def test_sqlite_uses_the_local_file_convention(self, sqlite_hook: SqliteHook, tmp_path: Path) -> None:
        naming = naming_for(sqlite_hook, writer_for(sqlite_hook, TableName.parse("t")))
        assert naming is not None
        assert (naming.namespace, naming.dialect) == ("file", "sqlite")
        assert naming.name("vexora_payout_status") == f"{tmp_path.resolve()}/wh.db/vexora_payout_status"

    def test_a_database_without_openlineage_naming_has_no_datasets(self) -> None:
        hook = mock.create_autospec(DbApiHook, instance=True)
        hook.get_openlineage_database_info.return_value = None
        writer = mock.Mock(dialect="generic")
        assert naming_for(hook, writer) is None
        writer.close.assert_called_once_with()

    def test_a_hooks_own_database_info_and_default_schema(self) -> None:
        from airflow.providers.openlineage.sqlparser import DatabaseInfo

        hook = mock.create_autospec(DbApiHook, instance=True)
        hook.get_openlineage_database_info.return_value = DatabaseInfo(
            scheme="oracle", authority="db.example:1521", database="ORCL"
        )
        hook.get_openlineage_database_dialect.return_value = "oracle"
        hook.get_openlineage_default_schema.return_value = "APP"
        writer = mock.Mock(dialect="generic")
        writer.current_schema.return_value = None
        naming = naming_for(hook, writer)
        assert naming == TableNaming("oracle://db.example:1521", "oracle", "ORCL", "APP")


class TestQueryLineage:
    def test_tables_the_query_reads_are_inputs(self) -> None:
        naming = TableNaming("postgres://h:5432", "postgres", "db", "public")
        inputs, job_facets = query_lineage(
            "SELECT p.trade_no FROM payouts p JOIN ops.batches b ON b.id = p.batch_id;", naming
        )
        assert sorted((d.namespace, d.name) for d in inputs) == [
            ("postgres://h:5432", "db.ops.batches"),
            ("postgres://h:5432", "db.public.payouts"),
        ]
        assert job_facets["sql"].query.startswith("SELECT p.trade_no FROM payouts p")

    def test_a_query_the_parser_cannot_read_has_no_inputs(self) -> None:
        naming = TableNaming("file", "sqlite", files={"main": "/d/w.db"})
        inputs, job_facets = query_lineage("SELEKT what FROM", naming)
        assert inputs == []
        assert "sql" in job_facets

    def test_a_sqlite_query_on_a_real_file(self, sqlite_hook: SqliteHook, tmp_path: Path) -> None:
        with sqlite3.connect(tmp_path / "wh.db") as db:
            db.execute("CREATE TABLE payouts (trade_no TEXT)")
        naming = naming_for(sqlite_hook, writer_for(sqlite_hook, TableName.parse("t")))
        assert naming is not None
        inputs: list[Any] = query_lineage("select trade_no from payouts", naming)[0]
        assert [(d.namespace, d.name) for d in inputs] == [("file", f"{tmp_path.resolve()}/wh.db/payouts")]
