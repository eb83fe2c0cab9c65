"""The rows the sync writes: one per fetched status, one per failed lookup, dialect-neutral.

Amounts are :class:`~decimal.Decimal` rounded once here to ``numeric(20,4)``, so every dialect
stores the same value; times are aware UTC datetimes (each writer converts them for its driver).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from vexora_provider.models import PayoutQueryError, PayoutStatus

__all__ = [
    "ERROR_COLUMNS",
    "KEY_COLUMNS",
    "STATUS_COLUMNS",
    "ErrorRow",
    "StatusRow",
    "dedupe_latest",
    "error_row",
    "query_error_row",
    "status_row",
]

STATUS_COLUMNS: tuple[str, ...] = (
    "merchant_no",
    "trade_no",
    "platform_trade_no",
    "status_code",
    "state",
    "message",
    "amount",
    "order_amount",
    "pay_amount",
    "success_time",
    "fetched_at",
    "raw",
)
ERROR_COLUMNS: tuple[str, ...] = ("merchant_no", "trade_no", "error_type", "error", "attempts", "failed_at")
KEY_COLUMNS: tuple[str, str] = ("merchant_no", "trade_no")

_AMOUNT_SCALE = Decimal("0.0001")
_AMOUNT_LIMIT = Decimal(10) ** 16  # numeric(20,4): 16 digits before the point
_MAX_ERROR_TEXT = 1000
_MAX_ERROR_TRADE_NO = 255  # an invalid trade number may be arbitrarily long; the key column is not

StatusRow = tuple[Any, ...]
ErrorRow = tuple[Any, ...]


def _amount(value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    try:
        scaled = value.quantize(_AMOUNT_SCALE, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        scaled = None
    if scaled is None or abs(scaled) >= _AMOUNT_LIMIT:
        raise ValueError(f"amount {value} does not fit numeric(20,4)")
    return scaled


def status_row(merchant_no: str, status: PayoutStatus, fetched_at: datetime) -> StatusRow:
    """Return the row for a fetched status; raise :class:`ValueError` if an amount does not fit."""
    success_time = status.success_time.astimezone(UTC) if status.success_time else None
    return (
        merchant_no,
        status.trade_no,
        status.platform_trade_no,
        status.status_code,
        status.state.value,
        status.message,
        _amount(status.amount),
        _amount(status.order_amount),
        _amount(status.pay_amount),
        success_time,
        fetched_at,
        status.raw_json(),
    )


def error_row(
    merchant_no: str, trade_no: object, *, error_type: str, error: str, attempts: int, failed_at: datetime
) -> ErrorRow:
    """Return the ``<table>_errors`` row for a trade whose status could not be fetched or stored."""
    return (
        merchant_no,
        str(trade_no)[:_MAX_ERROR_TRADE_NO],
        error_type,
        error[:_MAX_ERROR_TEXT],
        attempts,
        failed_at,
    )


def query_error_row(merchant_no: str, failure: PayoutQueryError, failed_at: datetime) -> ErrorRow:
    """Return the ``<table>_errors`` row for a :class:`PayoutQueryError` from the hook."""
    return error_row(
        merchant_no,
        failure.trade_no,
        error_type=failure.error_type,
        error=failure.message,
        attempts=failure.attempts,
        failed_at=failed_at,
    )


def dedupe_latest(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Keep the last row per (merchant_no, trade_no): a batch may hold the same trade twice."""
    latest = {(row[0], row[1]): row for row in rows}
    return rows if len(latest) == len(rows) else list(latest.values())
