"""SQL text shared by the writers: quoting, chunked key lists, and the ordering rule as SQL.

:func:`supersedes_sql` is :func:`~vexora_provider.warehouse.rows.supersedes` written as a SQL
condition, so the database itself decides, under its own row locks, whether an answer replaces
the stored one: a final state beats a non-final one, otherwise the later (or equal) fetch wins.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from vexora_provider.warehouse.rows import FINAL_STATES, KEY_COLUMNS

__all__ = [
    "FINAL_LIST",
    "IN_CHUNK",
    "Key",
    "by_merchant",
    "chunks",
    "final_flag",
    "quote_columns",
    "superseded_error_sql",
    "supersedes_sql",
    "update_set",
]

IN_CHUNK = 500  # keys per IN (...) list: well under every driver's bind-parameter limit
#: The final states as a SQL list of literals: ``'failed', 'partial', 'success'``.
FINAL_LIST = ", ".join(f"'{state}'" for state in FINAL_STATES)

T = TypeVar("T")
#: A row's key: ``(merchant_no, trade_no)``.
Key = tuple[str, str]


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of ``items`` of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def by_merchant(keys: Sequence[Key]) -> dict[str, list[str]]:
    """Group keys' trade numbers by merchant, keeping their order."""
    grouped: dict[str, list[str]] = {}
    for merchant_no, trade_no in keys:
        grouped.setdefault(merchant_no, []).append(trade_no)
    return grouped


def quote_columns(columns: Sequence[str], quote: str, prefix: str = "") -> str:
    """Return ``columns`` quoted with ``quote`` (each after ``prefix``, e.g. ``"s."``), comma-joined."""
    return ", ".join(f"{prefix}{quote}{c}{quote}" for c in columns)


def final_flag(state: str) -> str:
    """SQL that is 1 when the ``state`` expression is a final state, else 0 (NULL included)."""
    # A simple CASE, not ``IN (…)``: SQLite builds a temporary index for an IN list at every
    # evaluation, ~80 µs per upserted row, where this costs nothing measurable.
    whens = " ".join(f"WHEN '{state_value}' THEN 1" for state_value in FINAL_STATES)
    return f"(CASE {state} {whens} ELSE 0 END)"


def supersedes_sql(new_state: str, new_fetched: str, old_state: str, old_fetched: str) -> str:
    """SQL condition: the answer ``(new_state, new_fetched)`` replaces the stored one."""
    # A row-value comparison is lexicographic: class first, then fetch time (SQL-92; SQLite 3.15+).
    return f"(({final_flag(new_state)}, {new_fetched}) >= ({final_flag(old_state)}, {old_fetched}))"


def superseded_error_sql(state: str, fetched_at: str, failed_at: str) -> str:
    """SQL condition: a stored status makes an error row at ``failed_at`` obsolete."""
    return f"({final_flag(state)} = 1 OR {fetched_at} >= {failed_at})"


def update_set(columns: Sequence[str], quote: str, template: str, *, last: Sequence[str] = ()) -> str:
    """
    Return ``col = <template>`` for every non-key column: the SET list of an upsert.

    :param template: the new value, with ``{col}`` standing for the quoted column.
    :param last: columns to assign last, in this order (MySQL assigns left to right, and a
        condition that reads a column must run before that column is assigned).
    """
    ordered = [c for c in columns if c not in KEY_COLUMNS and c not in last] + list(last)
    return ", ".join(f"{quote}{c}{quote} = " + template.format(col=f"{quote}{c}{quote}") for c in ordered)
