from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import pytest

from vexora_provider.warehouse import UnstorableValueError
from vexora_provider.warehouse.values import (
    EXACT_TEXT,
    POSTGRES_NUMERIC,
    AmountColumn,
    amount_column_for,
    check_text,
    check_time,
    decimal_column,
    decimal_digits,
    exact_text,
    plain_decimal,
)


class TestDecimalDigits:
    @pytest.mark.parametrize(
        ("value", "digits"),
        [
            ("300.00", (3, 0, 2)),
            ("0.00004999", (0, 8, 8)),
            ("99.99999", (2, 5, 5)),
            ("1E+2", (3, 0, 0)),
            ("0", (0, 0, 0)),
            ("0.000", (0, 0, 3)),
            ("-12.340", (2, 2, 3)),
            ("1E+999999999", (1_000_000_000, 0, 0)),  # no huge string is built
        ],
    )
    def test_integer_fraction_and_written_scale(self, value: str, digits: tuple[int, int, int]) -> None:
        assert decimal_digits(Decimal(value)) == digits


class TestAmountColumn:
    @pytest.mark.parametrize(
        ("column", "value", "fits"),
        [
            (decimal_column(20, 4), "1234567890123456.1234", True),
            (decimal_column(20, 4), "0.00004999", False),  # would round to 0.0000
            (decimal_column(20, 4), "99.99999", False),  # would round to 100.0000
            (decimal_column(20, 4), "12345678901234567", False),
            (decimal_column(20, 4), "300.000000", True),  # trailing zeros: the value fits
            (decimal_column(65, 30), "0.00004999", True),
            (decimal_column(65, 30), "1E+35", False),
            (POSTGRES_NUMERIC, "1E+400", True),
            (POSTGRES_NUMERIC, "1E+200000", False),
            (POSTGRES_NUMERIC, "1." + "0" * 20000, False),  # its written scale
            (EXACT_TEXT, "1E+999999", True),
            (AmountColumn("DOUBLE", binary_float=True), "300.5", True),
            (AmountColumn("DOUBLE", binary_float=True), "0.1", False),
        ],
    )
    def test_fits_exactly_or_refused(self, column: AmountColumn, value: str, fits: bool) -> None:
        if fits:
            column.check("amount", Decimal(value))
        else:
            with pytest.raises(
                UnstorableValueError,
                match=f"amount: amount .* not representable in {re.escape(column.label)}",
            ):
                column.check("amount", Decimal(value))

    def test_none_fits_anywhere(self) -> None:
        decimal_column(1, 0).check("amount", None)

    @pytest.mark.parametrize(
        ("kind", "precision", "scale", "label"),
        [
            ("numeric", None, None, "NUMERIC"),
            ("numeric", 20, 4, "NUMERIC(20,4)"),
            ("decimal", 65, 30, "DECIMAL(65,30)"),
            ("double precision", 53, None, "DOUBLE PRECISION"),
            ("bigint", 64, 0, "BIGINT"),
            ("text", None, None, "TEXT"),
            ("character varying", None, None, "TEXT"),
        ],
    )
    def test_read_from_information_schema(
        self, kind: str, precision: int | None, scale: int | None, label: str
    ) -> None:
        column = amount_column_for(kind, precision, scale, POSTGRES_NUMERIC)
        assert column is not None
        assert column.label == label

    @pytest.mark.parametrize(
        ("kind", "fits", "too_big"),
        [
            ("tinyint", "99", "100"),
            ("smallint", "9999", "10000"),
            ("mediumint", "999999", "1000000"),
            ("integer", "999999999", "1000000000"),
            ("int", "999999999", "1000000000"),
            ("bigint", "999999999999999999", "1000000000000000000"),
        ],
    )
    def test_integer_columns_hold_only_what_every_value_of_the_type_fits(
        self, kind: str, fits: str, too_big: str
    ) -> None:
        column = amount_column_for(kind, None, None, POSTGRES_NUMERIC)
        assert column is not None
        column.check("amount", Decimal(fits))
        with pytest.raises(UnstorableValueError, match="amount"):
            column.check("amount", Decimal(too_big))

    def test_unknown_types_keep_the_default(self) -> None:
        assert amount_column_for("money", None, None, POSTGRES_NUMERIC) is None


class TestText:
    def test_nul_only_where_refused(self) -> None:
        check_text("message", "a\x00b")
        with pytest.raises(UnstorableValueError, match="message: contains NUL"):
            check_text("message", "a\x00b", nul_refused_by="PostgreSQL")

    def test_lone_surrogate_named(self) -> None:
        with pytest.raises(UnstorableValueError, match=r"raw: contains a lone surrogate \(U\+DC00\)"):
            check_text("raw", "ok é \udc00")

    def test_valid_text_passes(self) -> None:
        check_text("message", "ok é 😀", nul_refused_by="PostgreSQL")
        check_text("message", None, nul_refused_by="PostgreSQL")

    def test_exact_and_plain_text(self) -> None:
        assert exact_text(Decimal("300.00")) == "300.00"
        assert exact_text(Decimal("1E-8")) == "0.00000001"  # str() would write 1E-8
        assert exact_text(Decimal("1E+400")) == "1E+400"
        assert exact_text(None) is None
        assert plain_decimal(Decimal("1.50000")) == "1.5"
        assert plain_decimal(Decimal("1E+2")) == "100"
        assert plain_decimal(Decimal("300")) == "300"

    def test_time_range(self) -> None:
        low, high = datetime(1000, 1, 1), datetime(9999, 12, 31)
        check_time("success_time", datetime(2026, 1, 1), low, high, "DATETIME")
        with pytest.raises(
            UnstorableValueError, match="success_time: 0001-01-01 00:00:00 UTC is outside DATETIME"
        ):
            check_time("success_time", datetime(1, 1, 1), low, high, "DATETIME")
