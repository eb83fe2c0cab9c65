"""DDL for the status table and its ``<table>_errors`` companion, from per-dialect column types."""

from __future__ import annotations

from dataclasses import dataclass

from vexora_provider.warehouse.rows import KEY_COLUMNS
from vexora_provider.warehouse.sql import quote_columns

__all__ = [
    "AMOUNT_COLUMNS",
    "LEGACY_AMOUNT",
    "NOT_NULL_COLUMNS",
    "ColumnTypes",
    "create_table_statements",
    "error_column_types",
    "status_column_types",
]

AMOUNT_COLUMNS: tuple[str, ...] = ("amount", "order_amount", "pay_amount")
#: ``(precision, scale)`` of the amount columns created by earlier versions, which rounded to
#: four places; tables found with it are widened to the current type when ``create_table`` is on.
LEGACY_AMOUNT = (20, 4)


@dataclass(frozen=True, slots=True)
class ColumnTypes:
    """
    The SQL types a dialect uses for the synced columns.

    :param text_key: the key columns (``merchant_no``, ``trade_no``).
    :param text: other text columns.
    :param numeric: amounts: a type that holds what Vexora sends without rounding.
    :param timestamp: times.
    :param table_suffix: appended to each ``CREATE TABLE`` (engine, charset).
    """

    text_key: str = "VARCHAR(255)"
    text: str = "TEXT"
    # The widest exact type most SQL databases share (Snowflake, SQL Server, Oracle: 38 digits).
    numeric: str = "NUMERIC(38,18)"
    timestamp: str = "TIMESTAMP(6)"  # microseconds: the ordering rule compares fetch times
    table_suffix: str = ""


#: Columns that are ``NOT NULL`` in both tables.
NOT_NULL_COLUMNS: frozenset[str] = frozenset({*KEY_COLUMNS, "fetched_at", "failed_at"})


def status_column_types(types: ColumnTypes) -> dict[str, str]:
    """``column -> SQL type`` of the status table, in column order."""
    return {
        "merchant_no": types.text_key,
        "trade_no": types.text_key,
        "platform_trade_no": types.text,
        "status_code": types.text,
        "state": types.text,
        "message": types.text,
        "amount": types.numeric,
        "order_amount": types.numeric,
        "pay_amount": types.numeric,
        "success_time": types.timestamp,
        "fetched_at": types.timestamp,
        "raw": types.text,
    }


def error_column_types(types: ColumnTypes) -> dict[str, str]:
    """``column -> SQL type`` of the ``<table>_errors`` table, in column order."""
    return {
        "merchant_no": types.text_key,
        "trade_no": types.text_key,
        "error_type": types.text,
        "error": types.text,
        "attempts": "INTEGER",
        "failed_at": types.timestamp,
    }


def create_table_statements(status_sql: str, errors_sql: str, quote: str, types: ColumnTypes) -> list[str]:
    """Return ``CREATE TABLE IF NOT EXISTS`` statements for the status and errors tables."""
    primary_key = f"PRIMARY KEY ({quote_columns(KEY_COLUMNS, quote)})"
    tables = ((status_sql, status_column_types(types)), (errors_sql, error_column_types(types)))
    return [
        f"CREATE TABLE IF NOT EXISTS {name} ("
        + ", ".join(
            f"{quote}{col}{quote} {kind}" + (" NOT NULL" if col in NOT_NULL_COLUMNS else "")
            for col, kind in columns.items()
        )
        + f", {primary_key}){types.table_suffix}"
        for name, columns in tables
    ]
