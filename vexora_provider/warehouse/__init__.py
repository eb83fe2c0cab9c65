"""The warehouse side of the payout-status sync: table names, rows, DDL and one writer per dialect.

Every writer loads one batch as one transaction, with a constant number of statements per batch
(no per-row round trips to a server), and lets the database apply the ordering rule
(:func:`~vexora_provider.warehouse.rows.supersedes`: a final state is never replaced by a
non-final one, otherwise the later fetch wins):

* SQLite (:mod:`.sqlite`): conditional ``INSERT … ON CONFLICT DO UPDATE … WHERE`` through
  ``executemany`` inside ``BEGIN IMMEDIATE``.
* PostgreSQL (:mod:`.postgres`): ``COPY`` into a temporary stage, then one conditional
  ``INSERT … SELECT … ON CONFLICT … DO UPDATE … WHERE`` in key order.
* MySQL/MariaDB (:mod:`.mysql`): ``executemany`` of ``INSERT … ON DUPLICATE KEY UPDATE`` with
  ``IF()`` assignments (the drivers send it as multi-row inserts).
* Anything else (:mod:`.generic`): lock the batch's keys, read them, delete and insert the
  winning answers, in one transaction — correct on any DB-API driver.

A query failure only ever writes ``<table>_errors``; a status row is written only from a fetched
status; an error row is never written beside a final status or a newer fetch, and loading a
status deletes the error rows it makes obsolete in the same transaction (:mod:`.batch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vexora_provider.warehouse.base import WarehouseDataError, WarehouseError, dialect_name
from vexora_provider.warehouse.batch import BatchOutcome, WarehouseWriter
from vexora_provider.warehouse.generic import GenericWriter
from vexora_provider.warehouse.mysql import MySqlWriter
from vexora_provider.warehouse.names import TableName
from vexora_provider.warehouse.postgres import PostgresWriter
from vexora_provider.warehouse.rows import (
    ERROR_COLUMNS,
    STATUS_COLUMNS,
    ErrorRow,
    Reversal,
    StatusRow,
    error_row,
    query_error_row,
    status_row,
    supersedes,
)
from vexora_provider.warehouse.sqlite import SqliteWriter, sqlite_version_ok
from vexora_provider.warehouse.values import UnstorableValueError

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

__all__ = [
    "ERROR_COLUMNS",
    "STATUS_COLUMNS",
    "BatchOutcome",
    "ErrorRow",
    "GenericWriter",
    "MySqlWriter",
    "PostgresWriter",
    "Reversal",
    "SqliteWriter",
    "StatusRow",
    "TableName",
    "UnstorableValueError",
    "WarehouseDataError",
    "WarehouseError",
    "WarehouseWriter",
    "error_row",
    "query_error_row",
    "sqlite_version_ok",
    "status_row",
    "supersedes",
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
