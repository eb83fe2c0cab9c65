"""The one rule for trade-number inputs, read by every task, the trigger and the hook.

What a user passes as trade numbers -- a string, a list, a set, an ``XComArg``'s value, a list
rendered to text by Jinja, a column of ``trade_nos_sql`` -- becomes here an ordered list of clean,
distinct trade numbers, plus the entries that are not trade numbers at all. The rule, as the
docs' trade-numbers page states it:

- one string is one trade number; a string with a ``,`` or whitespace inside is refused
  ("did you mean a list?"), and a string that reads as a Python/JSON list (``"['A', 'B']"``, what
  Jinja renders a list to) is that list;
- a list, tuple, set (sorted) or any other iterable is a list of trade numbers; a mapping is
  refused;
- surrounding whitespace of each entry is removed; ``bytes`` are decoded as UTF-8; an ``int`` (or a
  whole-number ``Decimal``) is its digits; anything else (``None``, a float, a bool, a nested list)
  is not a trade number;
- a trade number is 1-32 printable characters once stripped;
- duplicates are kept once, at their first position.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk.exceptions import AirflowFailException

from vexora_provider.exceptions import VexoraInvalidTradeNoError
from vexora_provider.models import show

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "MAX_TRADE_NO_LENGTH",
    "DistinctTradeNos",
    "InvalidTradeNo",
    "LiteralTradeNosRendering",
    "TradeNos",
    "TradeNosError",
    "clean_trade_no",
    "coerce_trade_nos",
    "is_template",
    "literal_trade_nos",
    "refuse_literal_mistakes",
    "validate_trade_no",
]

MAX_TRADE_NO_LENGTH = 32
_JINJA_MARKERS = ("{{", "{%", "{#")
_LIST_BRACKETS = (("[", "]"), ("(", ")"))
_SHOWN = 5


class TradeNosError(ValueError, AirflowFailException):
    """
    A trade-numbers argument that is not trade numbers as a whole (the wrong type, a string that
    looks like several trade numbers).

    A ``ValueError``, so a DAG file that passes one shows an import error; also an
    ``AirflowFailException``, so where Airflow builds the task at run time (a mapped task's
    ``expand`` values) it fails without retries: the same input fails every try.

    :param message: what is wrong and how to pass it instead.
    """


class InvalidTradeNo(NamedTuple):
    """
    One entry of a trade-numbers argument that is not a trade number.

    :param entry: the entry as text, as it is recorded (the error row's ``trade_no``).
    :param error: why it is not a trade number.
    """

    entry: str
    error: VexoraInvalidTradeNoError


@dataclass(frozen=True, slots=True)
class TradeNos:
    """
    A trade-numbers argument after the rule.

    :param trade_nos: the distinct clean trade numbers, in the order first given.
    :param single: whether one string was given (the sensor then returns one status, not a list).
    :param duplicates: entries left out because they repeat an earlier one.
    :param invalid: entries that are not trade numbers, in the order given.
    """

    trade_nos: tuple[str, ...]
    single: bool = False
    duplicates: int = 0
    invalid: tuple[InvalidTradeNo, ...] = ()

    def invalid_summary(self) -> str:
        """Return e.g. ``2 entries are not trade numbers: trade 'None': a trade number must …``."""
        shown = "; ".join(str(i.error) for i in self.invalid[:_SHOWN])
        more = f"; and {len(self.invalid) - _SHOWN} more" if len(self.invalid) > _SHOWN else ""
        noun = "entry is not a trade number" if len(self.invalid) == 1 else "entries are not trade numbers"
        return f"{len(self.invalid)} {noun}: {shown}{more}"


def validate_trade_no(trade_no: object) -> str:
    """Return ``trade_no`` if it is a string of 1-32 printable characters, else raise."""
    if not isinstance(trade_no, str):
        raise VexoraInvalidTradeNoError(
            f"a trade number must be a string, got {type(trade_no).__name__}", trade_no=show(trade_no)
        )
    if not trade_no.strip():
        raise VexoraInvalidTradeNoError("a trade number must not be empty or blank", trade_no=trade_no)
    if len(trade_no) > MAX_TRADE_NO_LENGTH:
        raise VexoraInvalidTradeNoError(
            f"a trade number has at most {MAX_TRADE_NO_LENGTH} characters, this has {len(trade_no)}",
            trade_no=trade_no,
        )
    if not trade_no.isprintable():
        raise VexoraInvalidTradeNoError("a trade number must be printable characters only", trade_no=trade_no)
    return trade_no


def clean_trade_no(value: object) -> str:
    """
    Return one entry as a clean trade number: stripped, ``bytes`` decoded, an ``int`` as digits.

    :param value: one entry of a trade-numbers argument.
    :raises VexoraInvalidTradeNoError: the entry is not a trade number; the error names it.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise VexoraInvalidTradeNoError(
                "a trade number given as bytes must be UTF-8",
                trade_no=raw.decode("utf-8", "backslashreplace"),  # readable, e.g. \xffP2
            ) from None
    elif isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        value = str(int(value))  # a NUMERIC column of whole numbers: 1001.00 is "1001"
    if not isinstance(value, str):
        return validate_trade_no(value)
    try:
        return validate_trade_no(value.strip())
    except VexoraInvalidTradeNoError as error:
        error.trade_no = value  # recorded under the entry as given, e.g. " " for a blank one
        raise


def coerce_trade_nos(value: object, *, param: str = "trade_nos") -> TradeNos:
    """
    Apply the rule to a whole trade-numbers argument, after templating.

    :param value: what the task received.
    :param param: the argument's name, for messages.
    :raises TradeNosError: the argument is not trade numbers as a whole.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise TradeNosError(f"{param} is bytes that are not UTF-8: {show(value)}") from None
    if isinstance(value, str):
        listed = _list_text(value)
        if listed is None:
            return TradeNos((_clean_or_raise(_one_string(value, param), param),), single=True)
        value = listed
    if isinstance(value, Mapping):
        raise TradeNosError(f"{param} must be trade numbers, not a mapping; pass a list of its keys")
    if not isinstance(value, Iterable):
        raise TradeNosError(f"{param} must be a trade number or a list of them, not {type(value).__name__}")
    if isinstance(value, set | frozenset):
        value = sorted(value, key=str)  # a set has no order of its own: give the same one on every run
    seen: dict[str, None] = {}
    invalid: dict[str, InvalidTradeNo] = {}
    duplicates = 0
    for entry in value:
        try:
            trade_no = clean_trade_no(entry)
        except VexoraInvalidTradeNoError as error:
            key = error.trade_no if error.trade_no is not None else ""
            if key in invalid:
                duplicates += 1  # recorded once, like a repeated trade number
            else:
                invalid[key] = InvalidTradeNo(key, error)
            continue
        if trade_no in seen:
            duplicates += 1
        else:
            seen[trade_no] = None
    return TradeNos(tuple(seen), single=False, duplicates=duplicates, invalid=tuple(invalid.values()))


def _clean_or_raise(value: object, param: str) -> str:
    try:
        return clean_trade_no(value)
    except VexoraInvalidTradeNoError as error:
        raise TradeNosError(f"{param}: {error}") from None


class DistinctTradeNos:
    """
    Lets each trade number of a stream through once, cleaned; entries that are not trade numbers
    pass as given, for the caller to report when it tries them.

    For streams of unknown length (the hook's bulk API).
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def pick(self, entry: object) -> tuple[bool, object]:
        """Return whether to take ``entry``, and what to take: the clean trade number or the entry."""
        try:
            trade_no = clean_trade_no(entry)
        except VexoraInvalidTradeNoError:
            return True, entry
        if trade_no in self._seen:
            return False, trade_no
        self._seen.add(trade_no)
        return True, trade_no


class LiteralTradeNosRendering:
    """
    Operator mixin: a literal list of plain trade numbers is returned as is by ``render_template``.

    Jinja compiles every string of a list; for 100,000 literal trade numbers that is seconds.
    Put it before ``BaseOperator`` in the bases.
    """

    def render_template(
        self,
        content: Any,
        context: Any,
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Render templates; a literal list of plain trade numbers is returned as is."""
        literal = literal_trade_nos(content)
        if literal is not None:
            return literal
        return super().render_template(content, context, jinja_env, seen_oids)  # type: ignore[misc]


def is_template(value: object) -> bool:
    """Whether ``value`` is a string Jinja would render (it holds ``{{``, ``{%`` or ``{#``)."""
    return isinstance(value, str) and any(marker in value for marker in _JINJA_MARKERS)


def literal_trade_nos(content: object) -> list[object] | None:
    """
    Return a literal list of plain strings as a list, else ``None`` (render it as usual).
    """
    if isinstance(content, list | tuple) and all(isinstance(v, str) and not is_template(v) for v in content):
        return list(content)
    return None


def refuse_literal_mistakes(value: object, *, param: str, entries: bool = True) -> None:
    """
    Refuse, when the DAG is parsed, a trade-numbers argument that can already be seen to be wrong.

    Templated strings and values resolved at run time (an ``XComArg``) are left for then.

    :param value: the argument as written in the DAG file.
    :param param: its name, for messages.
    :param entries: refuse a literal entry that is not a trade number too; a task that records
        such an entry as that trade's error (the warehouse sync) leaves it for run time.
    :raises TradeNosError: the argument, or one of its literal entries, breaks the rule.
    """
    if is_template(value) or hasattr(value, "resolve") or isinstance(value, Iterator):
        return  # an iterator would be used up here, leaving nothing for the task
    if isinstance(value, list | tuple | set | frozenset) and any(
        is_template(v) or hasattr(v, "resolve") for v in value
    ):
        return
    if not entries and isinstance(value, list | tuple | set | frozenset):
        return  # a collection is never wrong as a whole; its entries are judged at run time
    coerced = coerce_trade_nos(value, param=param)
    if entries and coerced.invalid:
        raise TradeNosError(f"{param}: {coerced.invalid_summary()}")


def _list_text(value: str) -> list[object] | None:
    """A list rendered to text (``"['A', 'B']"``, JSON too) as that list; ``None`` for other text.

    Text in brackets that does not parse as a list or tuple (``"[PO-1]"``, ``"(123)"``) is one
    string; text that does (``"[1]"``) is that list.
    """
    text = value.strip()
    if not any(text.startswith(o) and text.endswith(c) for o, c in _LIST_BRACKETS):
        return None
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None  # not list text after all: one string, e.g. the trade number "[PO-1]"
    return list(parsed) if isinstance(parsed, list | tuple) else None


def _one_string(value: str, param: str) -> str:
    text = value.strip()
    if "," in text or any(c.isspace() for c in text):
        parts = [p for p in text.replace(",", " ").split() if p]
        suggestion = repr(parts[:3] + (["…"] if len(parts) > 3 else []))
        raise TradeNosError(
            f"{param} {show(value)} is one string holding several trade numbers; "
            f"did you mean a list? e.g. {param}={suggestion}"
        )
    return text
