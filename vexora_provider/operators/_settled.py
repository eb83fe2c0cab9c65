"""The trades a sync saw become final, for the outlet event of a ``vexora://`` payouts asset."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SETTLED_LIMIT", "SettledTrades"]

#: Trades listed at most in one outlet event's ``extra`` (under 70 KB of JSON); all are counted.
SETTLED_LIMIT = 1000


@dataclass
class SettledTrades:
    """
    Trades that became final in one sync run, as loaded (committed) into the table.

    A trade "became final in this run" when the run loaded a final state for it and the table did
    not hold it as final before: with ``only_non_terminal`` those were never fetched; otherwise
    the sync fills :attr:`already_final` from the same lookup.

    :param limit: trades listed at most; the rest are only counted (``truncated`` says so).
    :param already_final: trades the table held in a final state before this run.
    """

    limit: int = SETTLED_LIMIT
    already_final: set[str] = field(default_factory=set)
    listed: list[dict[str, str]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    _seen: set[str] = field(default_factory=set, repr=False)

    def record(self, settled: Iterable[tuple[str, str]]) -> None:
        """Take ``(trade_no, state)`` pairs of final statuses from one committed batch."""
        for trade_no, state in settled:
            if trade_no in self.already_final or trade_no in self._seen:
                continue
            self._seen.add(trade_no)
            self.counts[state] += 1
            if len(self.listed) < self.limit:
                self.listed.append({"trade_no": trade_no, "state": state})

    @property
    def total(self) -> int:
        """How many trades became final."""
        return sum(self.counts.values())

    def extra(self, merchant_no: str) -> dict[str, Any]:
        """The outlet event's ``extra``: listed trades, counts by state, and whether the list is cut."""
        return {
            "source": "sync",
            "merchant_no": merchant_no,
            "settled": list(self.listed),
            "counts": dict(sorted(self.counts.items())),
            "total": self.total,
            "truncated": self.total > len(self.listed),
        }
