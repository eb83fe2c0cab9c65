"""Warehouse tables as OpenLineage datasets, named as Airflow's SQL providers name them.

* PostgreSQL: namespace ``postgres://<host>:<port>``, name ``<database>.<schema>.<table>``.
* MySQL and MariaDB: namespace ``mysql://<host>:<port>``, name ``<database>.<table>``.
* Any other database whose hook gives OpenLineage database info: that info's namespace,
  ``[<database>.][<schema>.]<table>``.
* SQLite, which has no OpenLineage naming of its own: the local-file convention, namespace
  ``file``, name ``<database file>/<table>``.

Importing this module needs the OpenLineage provider.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.openlineage.facet import InputDataset, SQLJobFacet

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from vexora_provider.warehouse import WarehouseWriter

__all__ = ["TableNaming", "naming_for", "query_lineage"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableNaming:
    """
    How one warehouse connection's tables are named in OpenLineage.

    :param namespace: the datasets' namespace.
    :param dialect: the SQL parser's dialect for queries on this warehouse.
    :param database: the database part of names, where the dialect has one above schemas.
    :param default_schema: the schema unqualified table names resolve to.
    :param files: SQLite only: each attached database's file (``main`` is the connection's).
    """

    namespace: str
    dialect: str
    database: str | None = None
    default_schema: str | None = None
    files: Mapping[str, str] | None = field(default=None)

    def name(self, table: str, schema: str | None = None, database: str | None = None) -> str:
        """The dataset name of ``[[database.]schema.]table``."""
        if self.files is not None:
            place = schema or "main"
            if place in self.files:
                return f"{self.files[place]}/{table}"
            return f"{self.files.get('main', '')}/{place}.{table}"
        parts = (database or self.database, schema or self.default_schema, table)
        return ".".join(part for part in parts if part)


def _sqlite_files(hook: DbApiHook) -> dict[str, str]:
    # The files as SQLite resolved them (absolute paths), not the connection's text.
    conn = hook.get_conn()
    try:
        rows = conn.execute("PRAGMA database_list").fetchall()
    finally:
        conn.close()
    return {str(name): str(path) or ":memory:" for _, name, path in rows}


def naming_for(hook: DbApiHook, writer: WarehouseWriter) -> TableNaming | None:
    """
    Return how ``hook``'s tables are named, or ``None`` when its database has no OpenLineage naming.

    Reads the default schema (PostgreSQL, MySQL) or the database file (SQLite) from the database.

    :param hook: the warehouse hook.
    :param writer: a writer for that hook (its dialect and default-schema query); closed here.
    """
    try:
        if writer.dialect == "sqlite":
            return TableNaming(namespace="file", dialect="sqlite", files=_sqlite_files(hook))
        connection = hook.get_connection(hook.get_conn_id())
        info = hook.get_openlineage_database_info(connection)
        if info is None:
            log.info("No OpenLineage naming for %s tables: the warehouse tables are left out", writer.dialect)
            return None
        schema = writer.current_schema()
        if schema is None:
            with contextlib.suppress(Exception):  # a hook that cannot tell: names without schema
                schema = hook.get_openlineage_default_schema()
        return TableNaming(
            # As SQLParser.create_namespace, without loading the SQL parser for it.
            namespace=f"{info.scheme}://{info.authority}" if info.authority else str(info.scheme),
            dialect=str(hook.get_openlineage_database_dialect(connection)),
            database=info.database,
            default_schema=schema,
        )
    finally:
        writer.close()


def query_lineage(sql: str, naming: TableNaming) -> tuple[list[Any], dict[str, Any]]:
    """
    Return the tables a query reads, as input datasets, and its ``sql`` job facet.

    Tables the SQL parser cannot tell (a statement it cannot parse) are left out.

    :param sql: the query (``trade_nos_sql``, rendered).
    :param naming: how the warehouse names its tables.
    """
    # Here, not at the top: the parser (a native library) is only needed for trade_nos_sql.
    from airflow.providers.openlineage.sqlparser import SQLParser

    parser = SQLParser(dialect=naming.dialect, default_schema=naming.default_schema)
    job_facets: dict[str, Any] = {"sql": SQLJobFacet(query=SQLParser.normalize_sql(sql))}
    meta = parser.parse(parser.split_sql_string(sql))
    if meta is None:
        return [], job_facets
    for error in meta.errors:
        log.info("The SQL parser could not read part of trade_nos_sql: %s", error.message)
    inputs = [
        InputDataset(namespace=naming.namespace, name=naming.name(t.name, t.schema, t.database))
        for t in meta.in_tables
    ]
    return inputs, job_facets
