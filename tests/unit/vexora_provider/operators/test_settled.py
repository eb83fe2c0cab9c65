"""SettledTrades: what a sync announces in its payouts outlet event."""

from __future__ import annotations

import json

from vexora_provider.operators._settled import SETTLED_LIMIT, SettledTrades


class TestSettledTrades:
    def test_lists_counts_and_cuts(self) -> None:
        settled = SettledTrades(limit=2)
        settled.record([("A", "success"), ("B", "failed")])
        settled.record([("C", "success"), ("A", "success")])  # A again: a duplicate in the input
        assert settled.extra("m1") == {
            "source": "sync",
            "merchant_no": "m1",
            "settled": [{"trade_no": "A", "state": "success"}, {"trade_no": "B", "state": "failed"}],
            "counts": {"failed": 1, "success": 2},
            "total": 3,
            "truncated": True,
        }

    def test_trades_final_before_the_run_are_not_announced(self) -> None:
        settled = SettledTrades(already_final={"A"})
        settled.record([("A", "success"), ("B", "partial")])
        assert settled.extra("m1")["settled"] == [{"trade_no": "B", "state": "partial"}]
        assert settled.extra("m1")["truncated"] is False

    def test_default_limit_fits_an_event(self) -> None:
        settled = SettledTrades()
        settled.record((f"PAYOUT-2026-{n:020d}", "success") for n in range(SETTLED_LIMIT + 5))
        extra = settled.extra("3060414594")
        assert len(extra["settled"]) == SETTLED_LIMIT
        assert extra["total"] == SETTLED_LIMIT + 5
        assert len(json.dumps(extra)) < 80_000
