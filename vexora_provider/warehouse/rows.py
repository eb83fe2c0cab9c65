"""The rows the sync writes, and the one rule that decides which of two answers a table keeps.

A status row is one fetched answer; an error row one trade whose answer could not be fetched or
stored. Both are named records, dialect-neutral until a writer's ``adapt_*`` converts their
values for its driver. Amounts are the gateway's :class:`~decimal.Decimal` digits, never rounded;
times are aware UTC datetimes.

**Which answer wins** (:func:`supersedes`, and the same rule in every dialect's SQL): a final state
(success, partial, failed) beats a non-final one (pending, unknown); between two answers of the
same class the later fetch wins, a tie going to the answer written last. This order is total, so
the table ends with the same row whatever order concurrent writers commit in, and a final status
never goes back to pending.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from vexora_provider.models import TERMINAL_STATES, PayoutQueryError, PayoutStatus, show
from vexora_provider.warehouse.values import UnstorableValueError

__all__ = [
    "ERROR_COLUMNS",
    "FINAL_STATES",
    "KEY_COLUMNS",
    "STATUS_COLUMNS",
    "ErrorRow",
    "Reversal",
    "StatusRow",
    "error_row",
    "escape_text",
    "is_final",
    "latest_errors",
    "query_error_row",
    "status_row",
    "supersedes",
    "winning_statuses",
]

#: The final states, as stored in the ``state`` column.
FINAL_STATES: tuple[str, ...] = tuple(sorted(s.value for s in TERMINAL_STATES))
_FINAL = frozenset(FINAL_STATES)
_MAX_ERROR_TEXT = 1000
_MAX_ERROR_KEY = 255  # the key columns are VARCHAR(255) where the dialect needs a length


class StatusRow(NamedTuple):
    """One fetched answer, as a row of the status table (values converted by the writer)."""

    merchant_no: str
    trade_no: str
    platform_trade_no: str | None
    status_code: str
    state: str
    message: str | None
    amount: Any
    order_amount: Any
    pay_amount: Any
    success_time: Any
    fetched_at: Any
    raw: str


class ErrorRow(NamedTuple):
    """One trade whose answer could not be fetched or stored, as a row of ``<table>_errors``."""

    merchant_no: str
    trade_no: str
    error_type: str
    error: str
    attempts: int
    failed_at: Any


class Reversal(NamedTuple):
    """A final state replaced by a different final state (applied, and worth a warning)."""

    trade_no: str
    before: str
    after: str


STATUS_COLUMNS: tuple[str, ...] = StatusRow._fields
ERROR_COLUMNS: tuple[str, ...] = ErrorRow._fields
KEY_COLUMNS: tuple[str, str] = ("merchant_no", "trade_no")


def is_final(state: object) -> bool:
    """Whether a stored ``state`` value is final (success, partial, failed)."""
    return state in _FINAL


def supersedes(state: str, fetched_at: Any, old_state: object, old_fetched_at: Any) -> bool:
    """Whether an answer ``(state, fetched_at)`` replaces the stored one (ties: the newcomer wins)."""
    new_final, old_final = state in _FINAL, old_state in _FINAL
    if new_final != old_final:
        return new_final
    return bool(fetched_at >= old_fetched_at)


def status_row(merchant_no: str, status: PayoutStatus, fetched_at: datetime) -> StatusRow:
    """Return the row for a fetched status: amounts exactly as sent, times in UTC."""
    try:
        success_time = status.success_time.astimezone(UTC) if status.success_time else None
    except OverflowError:
        raise UnstorableValueError("success_time", "outside the years 1-9999 in UTC") from None
    return StatusRow(
        merchant_no,
        status.trade_no,
        status.platform_trade_no,
        status.status_code,
        status.state.value,
        status.message,
        status.amount,
        status.order_amount,
        status.pay_amount,
        success_time,
        fetched_at,
        status.raw_json(),
    )


def escape_text(value: object, *, keep: str = "") -> str:
    """
    Return ``value`` as text any database stores: printable characters as they are, the others
    (NUL and other controls, lone surrogates) as Python backslash escapes (``\\x00``, ``\\ud800``).

    :param value: a string, or anything else (written as a bounded ``repr``).
    :param keep: non-printable characters to keep as they are (e.g. ``"\\n"``).
    """
    if not isinstance(value, str):
        value = show(value)
    if value.isprintable():
        return value
    return "".join(
        c if c.isprintable() or c in keep else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in value
    )


def _error_key(trade_no: object) -> str:
    # A trade number that cannot be a status key (not text, not printable, too long) is stored
    # escaped, and cut with a digest past the key length so two long ones stay apart.
    text = escape_text(trade_no)
    if len(text) <= _MAX_ERROR_KEY:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:16]
    return f"{text[: _MAX_ERROR_KEY - 40]}…[{len(text)} chars, sha256 {digest}]"


def error_row(
    merchant_no: str, trade_no: object, *, error_type: str, error: str, attempts: int, failed_at: datetime
) -> ErrorRow:
    """Return the ``<table>_errors`` row for a trade whose status could not be fetched or stored."""
    return ErrorRow(
        merchant_no,
        _error_key(trade_no),
        escape_text(error_type),
        escape_text(error, keep="\n\t")[:_MAX_ERROR_TEXT],
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


def winning_statuses(rows: Iterable[StatusRow]) -> list[StatusRow]:
    """One row per key, the one :func:`supersedes` keeps, in key order (the order locks are taken in)."""
    kept: dict[tuple[str, str], StatusRow] = {}
    for row in rows:
        key = (row.merchant_no, row.trade_no)
        old = kept.get(key)
        if old is None or supersedes(row.state, row.fetched_at, old.state, old.fetched_at):
            kept[key] = row
    return [kept[key] for key in sorted(kept)]


def latest_errors(rows: Iterable[ErrorRow]) -> list[ErrorRow]:
    """One row per key, the latest failure (ties: the last one), in key order."""
    kept: dict[tuple[str, str], ErrorRow] = {}
    for row in rows:
        key = (row.merchant_no, row.trade_no)
        old = kept.get(key)
        if old is None or row.failed_at >= old.failed_at:
            kept[key] = row
    return [kept[key] for key in sorted(kept)]
