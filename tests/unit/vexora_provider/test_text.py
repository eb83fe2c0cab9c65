from __future__ import annotations

import pytest

from vexora_provider._text import count


class TestCount:
    @pytest.mark.parametrize(
        ("n", "noun", "text"),
        [
            (1, "status", "1 status"),
            (2, "status", "2 statuses"),
            (0, "status", "0 statuses"),
            (1, "payout", "1 payout"),
            (3, "payout", "3 payouts"),
            (2, "entry", "2 entries"),
            (1, "payout status lookup", "1 payout status lookup"),
        ],
    )
    def test_counts(self, n: int, noun: str, text: str) -> None:
        assert count(n, noun) == text
