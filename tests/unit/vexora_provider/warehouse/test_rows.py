from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.unit.vexora_provider.operators._fakes import MERCHANT, status
from tests.unit.vexora_provider.warehouse.support import NOW
from vexora_provider.warehouse import UnstorableValueError, error_row, status_row
from vexora_provider.warehouse.rows import (
    STATUS_COLUMNS,
    StatusRow,
    escape_text,
    latest_errors,
    supersedes,
    winning_statuses,
)

EARLY, LATE = NOW, NOW + timedelta(seconds=1)


class TestStatusRow:
    def test_amounts_exact_time_in_utc(self) -> None:
        row = status_row(MERCHANT, status("A", amount="0.00004999"), NOW)
        assert row.amount == Decimal("0.00004999")
        assert str(row.amount) == "0.00004999"  # never rounded
        assert row.success_time == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
        assert row.success_time.utcoffset() == timedelta(0)
        assert row.raw.startswith('{"tradeNo":"A"')
        assert row._fields == STATUS_COLUMNS

    def test_a_time_outside_the_utc_years_is_unstorable(self) -> None:
        plus_one = timezone(timedelta(hours=1))
        odd = dataclasses.replace(status("A"), success_time=datetime(1, 1, 1, 0, 30, tzinfo=plus_one))
        with pytest.raises(UnstorableValueError, match="success_time: outside the years 1-9999 in UTC"):
            status_row(MERCHANT, odd, NOW)


class TestSupersedes:
    @pytest.mark.parametrize(
        ("new", "old", "wins"),
        [
            (("success", LATE), ("pending", EARLY), True),
            (("pending", LATE), ("success", EARLY), False),  # a final state never goes back
            (("success", EARLY), ("pending", LATE), True),  # final beats non-final, whatever the time
            (("pending", LATE), ("pending", EARLY), True),
            (("pending", EARLY), ("pending", LATE), False),
            (("unknown", EARLY), ("pending", EARLY), True),  # a tie goes to the newcomer
            (("failed", LATE), ("success", EARLY), True),  # a reversal: applied
            (("failed", EARLY), ("success", LATE), False),
            (("partial", LATE), (None, EARLY), True),
        ],
    )
    def test_rule(self, new: tuple[str, datetime], old: tuple[str | None, datetime], wins: bool) -> None:
        assert supersedes(*new, *old) is wins

    def test_winning_statuses_one_per_key_in_key_order(self) -> None:
        def row(trade_no: str, state: str, at: datetime) -> StatusRow:
            return status_row(MERCHANT, status(trade_no, state), at)

        a_final, a_later, b = (
            row("A", "success", EARLY),
            row("A", "pending", LATE),
            row("B", "pending", EARLY),
        )
        assert winning_statuses([b, a_final, a_later]) == [a_final, b]
        assert winning_statuses([row("C", "pending", EARLY), c := row("C", "pending", EARLY)]) == [c]

    def test_latest_errors(self) -> None:
        early = error_row(MERCHANT, "E", error_type="X", error="early", attempts=1, failed_at=EARLY)
        late = error_row(MERCHANT, "E", error_type="X", error="late", attempts=1, failed_at=LATE)
        other = error_row(MERCHANT, "D", error_type="X", error="d", attempts=1, failed_at=EARLY)
        assert latest_errors([late, other, early]) == [other, late]


class TestErrorRow:
    @pytest.mark.parametrize(
        ("trade_no", "stored"),
        [
            ("T-1", "T-1"),
            ("NUL\x00IN", "NUL\\x00IN"),
            ("X\ud800", "X\\ud800"),
            ("TAB\tNO", "TAB\\tNO"),
            ("Übersee", "Übersee"),  # printable text stays as it is
            (7, "7"),
            (["nested", ["list"]], "['nested', ['list']]"),
        ],
    )
    def test_trade_number_stored_escaped(self, trade_no: object, stored: str) -> None:
        row = error_row(MERCHANT, trade_no, error_type="E", error="e", attempts=1, failed_at=NOW)
        assert row.trade_no == stored
        row.trade_no.encode("utf-8")

    def test_long_trade_numbers_keep_a_digest(self) -> None:
        a = error_row(MERCHANT, "A" * 300, error_type="E", error="e", attempts=1, failed_at=NOW)
        b = error_row(MERCHANT, "A" * 299 + "B", error_type="E", error="e", attempts=1, failed_at=NOW)
        assert len(a.trade_no) <= 255
        assert a.trade_no.startswith("A" * 200)
        assert "[300 chars, sha256 " in a.trade_no
        assert a.trade_no != b.trade_no

    def test_error_text_is_bounded_and_storable(self) -> None:
        row = error_row(
            MERCHANT, "X", error_type="E", error="line\nnul\x00" + "e" * 5000, attempts=2, failed_at=NOW
        )
        assert row.error.startswith("line\nnul\\x00")
        assert len(row.error) == 1000

    def test_escape_text_keeps_printable_text(self) -> None:
        text = "plain"
        assert escape_text(text) is text
