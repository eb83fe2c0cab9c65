"""The warehouse side of the payout-status sync: table names, rows, DDL and one writer per dialect.

Every writer loads one batch as one transaction, with a constant number of statements per batch
(no per-row round trips to a server):

* SQLite (:mod:`.sqlite`): ``INSERT … ON CONFLICT DO UPDATE`` through ``executemany``.
* PostgreSQL (:mod:`.postgres`): ``COPY`` into a temporary staging table, then one
  ``INSERT … SELECT … ON CONFLICT``.
* MySQL/MariaDB (:mod:`.mysql`): ``executemany`` of ``INSERT … ON DUPLICATE KEY UPDATE`` (the
  drivers send it as multi-row inserts).
* Anything else (:mod:`.generic`): delete the batch's keys, then ``executemany`` inserts, in one
  transaction — correct on any DB-API driver.

A query failure only ever writes ``<table>_errors``; a status row is written only from a fetched
status, and loading it deletes the trade's error row in the same transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vexora_provider.warehouse.base import WarehouseError, WarehouseWriter, dialect_name
from vexora_provider.warehouse.generic import GenericWriter
from vexora_provider.warehouse.mysql import MySqlWriter
from vexora_provider.warehouse.names import TableName
from vexora_provider.warehouse.postgres import PostgresWriter
from vexora_provider.warehouse.rows import (
    ERROR_COLUMNS,
    STATUS_COLUMNS,
    ErrorRow,
    StatusRow,
    dedupe_latest,
    error_row,
    query_error_row,
    status_row,
)
from vexora_provider.warehouse.sqlite import SqliteWriter, sqlite_version_ok

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

__all__ = [
    "ERROR_COLUMNS",
    "STATUS_COLUMNS",
    "ErrorRow",
    "GenericWriter",
    "MySqlWriter",
    "PostgresWriter",
    "SqliteWriter",
    "StatusRow",
    "TableName",
    "WarehouseError",
    "WarehouseWriter",
    "dedupe_latest",
    "error_row",
    "query_error_row",
    "sqlite_version_ok",
    "status_row",
    "writer_for",
]

_WRITERS: dict[str, type[WarehouseWriter]] = {
    "sqlite": SqliteWriter,
    "postgresql": PostgresWriter,
    "postgres": PostgresWriter,
    "mysql": MySqlWriter,
    "mariadb": MySqlWriter,
}


def writer_for(hook: DbApiHook, table: TableName, *, dialect: str | None = None) -> WarehouseWriter:
    """Pick the fast writer for the hook's dialect, or the generic one (``dialect="generic"`` forces it)."""
    name = (dialect or dialect_name(hook)).lower()
    return _WRITERS.get(name, GenericWriter)(hook, table)
