"""Payout states, typed results, and parsing of Vexora's response envelope.

Classification of status codes lives here and only here: the hook, trigger, sensor and operator
all call :meth:`StatusMap.classify`.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any
from zoneinfo import ZoneInfo

from vexora_provider.exceptions import (
    VexoraConfigError,
    VexoraError,
    VexoraInvalidPayoutError,
    VexoraResponseFormatError,
)

__all__ = [
    "DEFAULT_STATUS_MAP",
    "TERMINAL_STATES",
    "Balance",
    "Envelope",
    "PayoutQueryError",
    "PayoutState",
    "PayoutStatus",
    "StatusMap",
    "decode_envelope",
    "dumps_exact",
    "parse_balance",
    "parse_payout_status",
    "validate_payout_amount",
]

SUCCESS_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The zero-padded form every region sends, parsed without strptime (~10x cheaper, and the bulk
# fetch parses one per payout); anything else still goes through strptime's rules. ASCII digits
# only: ``\d`` would also take Arabic-Indic or full-width digits.
_SUCCESS_TIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
# A plain decimal: ASCII digits and an optional fraction; no sign, exponent, digit separators or
# other scripts' digits. What a payout amount we send must be.
_PLAIN_DIGITS = r"[0-9]+(?:\.[0-9]+)?"
_PLAIN_DECIMAL = re.compile(_PLAIN_DIGITS)
# An amount received is a number as JSON writes it (optionally in a string): a plain decimal with
# an optional sign and exponent. Decimal() alone would also take "1_000", "١٢٣", "NaN" and
# "Infinity".
_AMOUNT_RE = re.compile(rf"-?{_PLAIN_DIGITS}(?:[eE][-+]?[0-9]+)?")
_ASCII_BLANKS = " \t\r\n"
# Lone surrogates are legal in a JSON escape (and in a decoded str) but not in UTF-8 text.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Error messages quote what was received, bounded: a hostile value may be huge or nested deeply.
_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlevel = 80, 80, 3


class PayoutState(StrEnum):
    """What a payout status code means to us; the values are the lowercase words."""

    PENDING = "pending"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the gateway will not change this payout any more."""
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[PayoutState] = frozenset(
    {PayoutState.SUCCESS, PayoutState.PARTIAL, PayoutState.FAILED}
)

DEFAULT_STATUS_MAP: Mapping[str, PayoutState] = {
    "0000": PayoutState.SUCCESS,
    "0001": PayoutState.PARTIAL,
    "0015": PayoutState.PENDING,
    "00029": PayoutState.FAILED,
}


@dataclass(frozen=True, slots=True)
class StatusMap:
    """
    Maps ``data.status`` codes to states; an undocumented code is ``unknown``, never a guess.

    :param codes: code → state; build with :meth:`with_overrides` to start from the defaults.
    """

    codes: Mapping[str, PayoutState] = field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, object] | None = None) -> StatusMap:
        """Return the default map with ``overrides`` (code → state name) merged over it."""
        codes = dict(DEFAULT_STATUS_MAP)
        for code, state in (overrides or {}).items():
            try:
                codes[str(code)] = PayoutState(str(state).lower())
            except ValueError:
                allowed = ", ".join(s.value for s in PayoutState)
                raise VexoraConfigError(
                    f"status_map maps {code!r} to {state!r}; a state must be one of {allowed}"
                ) from None
        return cls(codes)

    def classify(self, code: str) -> PayoutState:
        """Return the state for a status code."""
        return self.codes.get(code, PayoutState.UNKNOWN)

    def overrides(self) -> dict[str, str]:
        """Return the entries that differ from the defaults, as plain JSON data."""
        return {c: s.value for c, s in self.codes.items() if DEFAULT_STATUS_MAP.get(c) != s}


@dataclass(frozen=True, slots=True)
class PayoutStatus:
    """
    One payout as the gateway reported it.

    :param trade_no: the merchant's trade number.
    :param platform_trade_no: Vexora's id, for reconciliation.
    :param status_code: ``data.status`` exactly as sent.
    :param state: the classified state.
    :param message: the gateway's ``data.message``.
    :param amount: actual amount (regions that send ``amount``).
    :param order_amount: ordered amount (regions that send ``orderAmount``).
    :param pay_amount: disbursed amount (regions that send ``payAmount``).
    :param success_time: aware datetime in the region's timezone, ``None`` when unknown.
    :param raw: the ``data`` object as received (numbers as :class:`~decimal.Decimal`).
    """

    trade_no: str
    platform_trade_no: str | None
    status_code: str
    state: PayoutState
    message: str | None
    amount: Decimal | None
    order_amount: Decimal | None
    pay_amount: Decimal | None
    success_time: datetime | None
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def is_terminal(self) -> bool:
        """Whether the gateway will not change this payout any more."""
        return self.state.is_terminal

    def to_dict(self) -> dict[str, str | None]:
        """Return plain JSON data (amounts as strings, time as ISO 8601) for XCom and events."""
        return {
            "trade_no": self.trade_no,
            "platform_trade_no": self.platform_trade_no,
            "state": self.state.value,
            "status_code": self.status_code,
            "message": self.message,
            "amount": _text(self.amount),
            "order_amount": _text(self.order_amount),
            "pay_amount": _text(self.pay_amount),
            "success_time": self.success_time.isoformat() if self.success_time else None,
        }

    def raw_json(self) -> str:
        """Return ``raw`` as JSON text with every number written exactly as received."""
        return dumps_exact(self.raw)


@dataclass(frozen=True, slots=True)
class Balance:
    """
    The merchant's balance from ``queryBalance`` (no currency: the gateway sends none).

    :param available_amount: money available for payouts.
    :param freeze_amount: money frozen.
    :param unsettled_amount: money not yet settled.
    :param raw: the ``data`` object as received.
    """

    available_amount: Decimal | None
    freeze_amount: Decimal | None
    unsettled_amount: Decimal | None
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class PayoutQueryError:
    """
    A trade whose status could not be fetched; the payout itself may be fine.

    :param trade_no: the trade number asked for.
    :param error: the typed error of the last attempt.
    """

    trade_no: str
    error: VexoraError

    @property
    def error_type(self) -> str:
        """The error's class name, e.g. ``VexoraTransportError``."""
        return type(self.error).__name__

    @property
    def attempts(self) -> int:
        """How many requests were sent for this trade."""
        return self.error.attempts

    @property
    def message(self) -> str:
        """The error's message (never contains the secret)."""
        return str(self.error)


@dataclass(frozen=True, slots=True)
class Envelope:
    """
    The request-level part of an answer.

    :param code: request-level ``code`` (``0000`` means the request worked).
    :param msg: request-level ``msg``.
    :param data: the ``data`` member, or ``None``.
    """

    code: str
    msg: str
    data: Any


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _reject_constant(name: str) -> object:
    # NaN and Infinity are not JSON and would arrive as floats: refuse them like any bad body.
    raise ValueError(name)


# One decoder for every body: json.loads(..., parse_float=...) builds a new one per call.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def decode_envelope(content: bytes, *, trade_no: str | None = None) -> Envelope:
    """Decode a response body; numbers become ``Decimal``/``int``, never ``float``."""
    try:
        body = _DECODER.decode(content.decode(json.detect_encoding(content), "surrogatepass"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise VexoraResponseFormatError(
            f"body is not JSON ({len(content)} bytes)", trade_no=trade_no
        ) from None
    if not isinstance(body, dict) or "code" not in body:
        raise VexoraResponseFormatError("body has no request-level 'code'", trade_no=trade_no)
    code, msg = body["code"], body.get("msg")
    if not isinstance(code, str | int) or isinstance(code, bool):
        raise VexoraResponseFormatError(f"'code' is a {type(code).__name__}", trade_no=trade_no)
    return Envelope(code=str(code), msg=msg if isinstance(msg, str) else "", data=body.get("data"))


def show(value: object) -> str:
    """Return a short ``repr`` of ``value`` for error messages, whatever its size or nesting."""
    return _SHOW.repr(value)


def parse_amount(value: object, name: str, *, trade_no: str | None = None) -> Decimal | None:
    """
    Parse an amount sent as a JSON number or string; ``None``/``""`` mean not sent.

    Only a number as JSON writes it is an amount: ASCII digits, an optional fraction and
    exponent (``"300.00"``, ``3.0000``, ``"1E+2"``). Its digits are kept exactly.
    """
    if value is None or value == "":
        return None
    amount: Decimal | None = None
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value.strip(_ASCII_BLANKS)
        if _AMOUNT_RE.fullmatch(text):
            amount = Decimal(text)
    if amount is None or not amount.is_finite():
        raise VexoraResponseFormatError(f"{name} is not an amount: {show(value)}", trade_no=trade_no)
    return amount


MAX_AMOUNT_DIGITS = 32


def validate_payout_amount(value: object, *, trade_no: str | None = None) -> str:
    """
    Return a payout amount as the exact decimal text to send, or raise before any request.

    Accepts a string of ASCII digits with an optional fraction (``"1500.00"``; surrounding
    whitespace is ignored), a ``Decimal`` or an ``int``, finite and greater than zero, with at most
    32 digits. The text sent has the same digits and scale, never an exponent
    (``Decimal("1.5E+3")`` is sent as ``"1500"``). Floats are refused: most decimal amounts have
    no exact binary value.
    """
    if isinstance(value, str):
        text = value.strip(_ASCII_BLANKS)
        if not _PLAIN_DECIMAL.fullmatch(text):
            raise VexoraInvalidPayoutError(
                f"amount {value!r} is not a plain decimal such as '1500.00' (ASCII digits and an "
                "optional '.', no sign, exponent or separators)",
                trade_no=trade_no,
            )
        amount = Decimal(text)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, float):
        raise VexoraInvalidPayoutError(
            f"amount {value!r} is a float, which cannot hold most decimal amounts exactly: pass a "
            "string such as '1500.00' or a Decimal",
            trade_no=trade_no,
        )
    else:
        raise VexoraInvalidPayoutError(
            f"amount must be a string, Decimal or int, not {type(value).__name__}", trade_no=trade_no
        )
    if not amount.is_finite() or amount <= 0:
        raise VexoraInvalidPayoutError(
            f"amount {value!r} must be finite and greater than zero", trade_no=trade_no
        )
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite
    if max(len(digits) + exponent, 1) + max(-exponent, 0) > MAX_AMOUNT_DIGITS:
        raise VexoraInvalidPayoutError(
            f"amount {value!r} has more than {MAX_AMOUNT_DIGITS} digits", trade_no=trade_no
        )
    return format(amount, "f")


def parse_success_time(value: object, tz: ZoneInfo | None, *, trade_no: str | None = None) -> datetime | None:
    """
    Parse ``successTime`` (region local time, no offset); ``None`` when absent or zone unknown.

    A local time the zone skips (a DST gap) or repeats (a DST fold) is read with the UTC offset
    in force just before the transition, the rule of ``java.time.ZonedDateTime.of`` and of
    Python's ``fold=0``: a repeated time is its first occurrence, a skipped time is moved forward
    by the length of the gap. The result is a real local time of the zone, so it compares and
    converts like any other. A time whose UTC instant falls outside the years 1-9999 is a
    response-format error.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise VexoraResponseFormatError(f"successTime is not a string: {show(value)}", trade_no=trade_no)
    text = value.strip(_ASCII_BLANKS)
    try:
        if not text.isascii():
            raise ValueError(text)
        match = _SUCCESS_TIME_RE.fullmatch(text)
        if match:
            year, month, day, hour, minute, second = map(int, match.groups())
            naive = datetime(year, month, day, hour, minute, second)
        else:
            naive = datetime.strptime(text, SUCCESS_TIME_FORMAT)
    except ValueError:
        raise VexoraResponseFormatError(
            f"successTime {show(value)} is not yyyy-MM-dd HH:mm:ss", trade_no=trade_no
        ) from None
    if tz is None:
        return None
    try:
        # fold=0 (the default) reads gap and fold times with the pre-transition offset; the round
        # trip through UTC turns a skipped time into the real local time it stands for.
        return naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
    except OverflowError:
        raise VexoraResponseFormatError(
            f"successTime {show(value)} in {tz.key} is outside the years 1-9999 in UTC", trade_no=trade_no
        ) from None


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    # A string as sent; any other JSON value as its exact JSON text (never a Python repr, which
    # is neither JSON nor bounded in depth).
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    return dumps_exact(value)


def parse_payout_status(
    data: object, *, trade_no: str, status_map: StatusMap, tz: ZoneInfo | None
) -> PayoutStatus:
    """Build a :class:`PayoutStatus` from ``data``, accepting every regional variant."""
    if not isinstance(data, dict):
        raise VexoraResponseFormatError("'data' is not an object", trade_no=trade_no)
    status = data.get("status")
    if status is None or status == "" or isinstance(status, bool | dict | list):
        raise VexoraResponseFormatError("data.status is missing", trade_no=trade_no)
    answered_for = data.get("tradeNo")
    if answered_for not in (None, "") and _optional_text(data, "tradeNo") != trade_no:
        raise VexoraResponseFormatError(
            f"answer is for another trade ({show(answered_for)})", trade_no=trade_no
        )
    code = str(status)
    return PayoutStatus(
        trade_no=trade_no,
        platform_trade_no=_optional_text(data, "platFormTradeNo"),
        status_code=code,
        state=status_map.classify(code),
        message=_optional_text(data, "message"),
        amount=parse_amount(data.get("amount"), "amount", trade_no=trade_no),
        order_amount=parse_amount(data.get("orderAmount"), "orderAmount", trade_no=trade_no),
        pay_amount=parse_amount(data.get("payAmount"), "payAmount", trade_no=trade_no),
        success_time=parse_success_time(data.get("successTime"), tz, trade_no=trade_no),
        raw=data,
    )


def parse_balance(data: object) -> Balance:
    """Build a :class:`Balance` from the ``data`` of ``queryBalance``."""
    if not isinstance(data, dict):
        raise VexoraResponseFormatError("'data' is not an object")
    return Balance(
        available_amount=parse_amount(data.get("availableAmount"), "availableAmount"),
        freeze_amount=parse_amount(data.get("freezeAmount"), "freezeAmount"),
        unsettled_amount=parse_amount(data.get("unsettledAmount"), "unsettledAmount"),
        raw=data,
    )


class _Token(str):
    """Literal JSON text on the serialiser's stack (as opposed to a string value to encode)."""

    __slots__ = ()


_CLOSE_OBJECT, _CLOSE_ARRAY = _Token("}"), _Token("]")


def _json_string(text: str) -> str:
    encoded: str = encode_basestring(text)
    # json.dumps escapes control characters (NUL included) but leaves lone surrogates raw, and
    # raw they are not UTF-8: write them as the \uXXXX escapes they arrived as.
    if not encoded.isascii():
        encoded = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)
    return encoded


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def dumps_exact(value: object) -> str:
    """
    Serialise parsed JSON back to text, writing ``Decimal`` numbers digit for digit.

    Iterative, so any nesting the decoder accepted serialises; the text is valid UTF-8 (lone
    surrogates written as ``\\uXXXX`` escapes) with no raw control characters.
    """
    parts: list[str] = []
    stack: list[object] = [value]
    emit, push, pop = parts.append, stack.append, stack.pop
    while stack:
        item = pop()
        if type(item) is _Token:
            emit(item)
        elif isinstance(item, dict):
            if not any(isinstance(member, dict | list | tuple) for member in item.values()):
                # The usual answer: one flat object, written in one go.
                emit("{" + ",".join(f"{_json_string(str(k))}:{_scalar(v)}" for k, v in item.items()) + "}")
                continue
            emit("{")
            push(_CLOSE_OBJECT)
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, member = entries[index]
                push(member)
                push(_Token(("," if index else "") + _json_string(str(key)) + ":"))
        elif isinstance(item, list | tuple):
            emit("[")
            push(_CLOSE_ARRAY)
            for index in range(len(item) - 1, -1, -1):
                push(item[index])
                if index:
                    push(_Token(","))
        else:
            emit(_scalar(item))
    return "".join(parts)
