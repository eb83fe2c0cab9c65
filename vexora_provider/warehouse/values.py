"""What a column can hold: each value of a row is checked before it reaches the driver.

A value the table cannot hold as it is (text a driver cannot encode, NUL on PostgreSQL, an amount
the column would round, a time out of the column's range) raises :class:`UnstorableValueError`
naming the field and the cause; the sync records that one trade in ``<table>_errors`` and the
rest of the batch commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "EXACT_TEXT",
    "POSTGRES_NUMERIC",
    "AmountColumn",
    "UnstorableValueError",
    "amount_column_for",
    "check_text",
    "check_time",
    "decimal_column",
    "decimal_digits",
    "exact_text",
    "instant",
    "naive_utc",
    "plain_decimal",
]

# Above this many characters an amount is written in exponent form (str(Decimal)), still exact.
_PLAIN_TEXT_MAX = 100


class UnstorableValueError(ValueError):
    """
    One value of one trade's row cannot be stored as it is.

    :param field: the column (``message``, ``amount``, …).
    :param cause: why, without the value when it is text.
    """

    error_type = "UnstorableValue"

    def __init__(self, field: str, cause: str) -> None:
        super().__init__(f"{field}: {cause}")
        self.field = field
        self.cause = cause


def decimal_digits(value: Decimal) -> tuple[int, int, int]:
    """
    Return ``(integer digits, fraction digits, written scale)`` of a finite ``value``.

    Fraction digits do not count trailing zeros (``300.00`` has none); the written scale does (2).
    Computed from the digit tuple: no context rounding, no huge strings for huge exponents.
    """
    _, coefficient, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: amounts are checked when parsed
    written_scale = max(0, -exponent)
    end = len(coefficient)
    while end > 1 and coefficient[end - 1] == 0:
        end -= 1
    exponent += len(coefficient) - end
    if end == 1 and coefficient[0] == 0:
        return 0, 0, written_scale
    return max(0, end + exponent), max(0, -exponent), written_scale


@dataclass(frozen=True, slots=True)
class AmountColumn:
    """
    The amounts a column holds exactly.

    :param label: the column type, for error messages.
    :param integer_digits: most digits before the point (``None``: any).
    :param scale: most digits after the point (``None``: any).
    :param keeps_scale: the written scale counts (trailing zeros included), not only the value's.
    :param binary_float: a floating-point column: only amounts a double holds exactly fit.
    """

    label: str
    integer_digits: int | None = None
    scale: int | None = None
    keeps_scale: bool = False
    binary_float: bool = False

    def check(self, field: str, value: Decimal | None) -> None:
        """Raise :class:`UnstorableValueError` unless the column holds ``value`` exactly."""
        if value is None:
            return
        if self.binary_float:
            if Decimal(float(value)) != value:
                raise UnstorableValueError(field, f"amount {value} not representable in {self.label}")
            return
        integer, fraction, written = decimal_digits(value)
        if (self.integer_digits is not None and integer > self.integer_digits) or (
            self.scale is not None and (written if self.keeps_scale else fraction) > self.scale
        ):
            shown = value if len(value.as_tuple().digits) <= 40 else f"{value:.6e}"
            raise UnstorableValueError(field, f"amount {shown} not representable in {self.label}")


#: PostgreSQL's unconstrained ``NUMERIC``: 131072 digits before the point, 16383 after.
POSTGRES_NUMERIC = AmountColumn("NUMERIC", integer_digits=131072, scale=16383, keeps_scale=True)
#: Amounts stored as their text: any finite amount.
EXACT_TEXT = AmountColumn("TEXT")


def decimal_column(precision: int, scale: int, kind: str = "DECIMAL") -> AmountColumn:
    """The amounts a ``DECIMAL(precision, scale)`` column holds without rounding."""
    return AmountColumn(f"{kind}({precision},{scale})", integer_digits=precision - scale, scale=scale)


def plain_decimal(value: Decimal) -> str:
    """``value`` without exponent or trailing fraction zeros (for drivers that send text)."""
    sign, coefficient, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    end = len(coefficient)
    while end > 1 and coefficient[end - 1] == 0 and exponent < 0:
        end -= 1
        exponent += 1
    return f"{Decimal((sign, coefficient[:end], exponent)):f}"


def exact_text(value: Decimal | None) -> str | None:
    """``value`` as text, digit for digit: plain notation unless that would be very long."""
    if value is None:
        return None
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) + abs(exponent) <= _PLAIN_TEXT_MAX:
        return f"{value:f}"
    return str(value)


def check_text(field: str, value: str | None, *, nul_refused_by: str | None = None) -> None:
    """
    Raise :class:`UnstorableValueError` for text a UTF-8 database cannot hold.

    :param nul_refused_by: who cannot store NUL in text (``"PostgreSQL"``), ``None`` if it can.
    """
    if value is None:
        return
    if nul_refused_by and "\x00" in value:
        raise UnstorableValueError(field, f"contains NUL (0x00), which {nul_refused_by} text cannot hold")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = ord(value[exc.start])
            raise UnstorableValueError(
                field, f"contains a lone surrogate (U+{bad:04X}), which is not valid Unicode text"
            ) from None


def check_time(field: str, value: datetime | None, low: datetime, high: datetime, label: str) -> None:
    """Raise :class:`UnstorableValueError` unless ``low <= value <= high`` (naive, UTC)."""
    if value is not None and not low <= value <= high:
        raise UnstorableValueError(field, f"{value.isoformat(sep=' ')} UTC is outside {label}")


_FLOAT_TYPES = frozenset({"double precision", "double", "real", "float", "float4", "float8", "binary_double"})
# Decimal digits every value of a signed integer type holds (INT's 2,147,483,647 holds any
# 9-digit number, not every 10-digit one): past them a server outside strict mode would clamp.
_INTEGER_DIGITS = {
    "tinyint": 2,
    "smallint": 4,
    "int2": 4,
    "mediumint": 6,
    "integer": 9,
    "int": 9,
    "int4": 9,
    "bigint": 18,
    "int8": 18,
}
_TEXT_MARKERS = ("char", "text", "clob", "string")


def amount_column_for(
    data_type: str, precision: int | None, scale: int | None, unconstrained: AmountColumn
) -> AmountColumn | None:
    """
    What an existing amount column holds, from its ``information_schema`` description.

    :param unconstrained: what a ``NUMERIC`` without precision holds in this database.
    :returns: ``None`` for a type this does not know (the writer keeps its default).
    """
    kind = data_type.lower()
    if kind in ("numeric", "decimal", "number"):
        if precision is None:
            return unconstrained
        return decimal_column(precision, scale or 0, kind.upper())
    if kind in _FLOAT_TYPES:
        return AmountColumn(kind.upper(), binary_float=True)
    if kind in _INTEGER_DIGITS:
        return AmountColumn(kind.upper(), integer_digits=_INTEGER_DIGITS[kind], scale=0)
    if any(marker in kind for marker in _TEXT_MARKERS):
        return EXACT_TEXT
    return None


def instant(value: Any) -> datetime:
    """A stored or converted time (aware, naive UTC or ISO text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def naive_utc(value: datetime | None) -> datetime | None:
    """Return ``value`` in UTC without tzinfo (for ``TIMESTAMP``/``DATETIME`` columns)."""
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)
