"""DDL for the status table and its ``<table>_errors`` companion, from per-dialect column types."""

from __future__ import annotations

from dataclasses import dataclass

from vexora_provider.warehouse.rows import KEY_COLUMNS
from vexora_provider.warehouse.sql import quote_columns

__all__ = ["AMOUNT_COLUMNS", "LEGACY_AMOUNT", "ColumnTypes", "create_table_statements"]

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


def create_table_statements(status_sql: str, errors_sql: str, quote: str, types: ColumnTypes) -> list[str]:
    """Return ``CREATE TABLE IF NOT EXISTS`` statements for the status and errors tables."""
    key = f"{types.text_key} NOT NULL"
    status_types = {
        "merchant_no": key,
        "trade_no": key,
        "platform_trade_no": types.text,
        "status_code": types.text,
        "state": types.text,
        "message": types.text,
        "amount": types.numeric,
        "order_amount": types.numeric,
        "pay_amount": types.numeric,
        "success_time": types.timestamp,
        "fetched_at": f"{types.timestamp} NOT NULL",
        "raw": types.text,
    }
    error_types = {
        "merchant_no": key,
        "trade_no": key,
        "error_type": types.text,
        "error": types.text,
        "attempts": "INTEGER",
        "failed_at": f"{types.timestamp} NOT NULL",
    }
    primary_key = f"PRIMARY KEY ({quote_columns(KEY_COLUMNS, quote)})"
    return [
        f"CREATE TABLE IF NOT EXISTS {name} ("
        + ", ".join(f"{quote}{col}{quote} {kind}" for col, kind in columns.items())
        + f", {primary_key}){types.table_suffix}"
        for name, columns in ((status_sql, status_types), (errors_sql, error_types))
    ]
