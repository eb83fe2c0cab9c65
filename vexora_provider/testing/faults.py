"""Fault rules: what can go wrong on a call, when, and how often.

A rule fires for calls that match its endpoint, trade number and call number, with its
probability. The dice are a hash of ``(seed, rule, endpoint, trade number, nth call of that
trade)``, so a seeded run injects the same faults into the same calls whatever the arrival order
of concurrent requests. Latency rules add up and combine with the answer; the first other rule
that fires replaces the answer. An ``accept_then_*`` rule does not spare the call: the gateway
does the work (a create is accepted and the money moves) and only then is the answer lost, the
one failure after which a client cannot tell whether its request took effect.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

from vexora_provider.testing.hostile import HOSTILE_KINDS
from vexora_provider.testing.state import unit

__all__ = ["ACCEPT_THEN", "ENDPOINTS", "FAULT_KINDS", "FaultPlan", "FaultRule", "parse_fault"]

ENDPOINTS = ("queryPayOutResult", "queryBalance", "disbursements", "queryPayInResult")
#: ``latency`` delays the real answer; the hostile kinds (:data:`HOSTILE_KINDS`) alter one field
#: of it; every other kind replaces it.
FAULT_KINDS = (
    "latency",
    "http_500",
    "http_502",
    "http_503",
    "http_429",
    "code_5000",
    "code_8000",
    "malformed_json",
    "truncated",
    "hang",
    "reset",
    "not_found",
    "accept_then_reset",
    "accept_then_http_502",
    "accept_then_hang",
    *HOSTILE_KINDS,
)
#: Prefix of the kinds that answer only after the gateway has done the work.
ACCEPT_THEN = "accept_then_"
_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One fault to inject.

    :param kind: one of :data:`FAULT_KINDS`. ``not_found`` answers a status query "order not
        exist" as a lagging replica would, even for a payout that exists; ``accept_then_reset``,
        ``accept_then_http_502`` and ``accept_then_hang`` handle the call, then drop the
        connection, answer HTTP 502 or hang instead of answering.
    :param endpoint: endpoint name (``queryPayOutResult``, ``queryBalance``, ``disbursements``)
        or ``"*"`` for all of them.
    :param probability: chance in [0, 1] that a matching call gets the fault.
    :param trade_no: only calls about this trade number (``None``: any).
    :param nth: only these call numbers (1-based, counted per endpoint and trade number; for
        ``queryBalance`` per endpoint and merchant), e.g. ``(1, 2)`` to fail the first two polls.
    :param latency_ms: ``latency``: fixed delay, the lower bound of a uniform delay, or the median
        of a log-normal one.
    :param latency_max_ms: ``latency``: upper bound of a uniform delay.
    :param latency_sigma: ``latency``: sigma of a log-normal delay around ``latency_ms``.
    :param retry_after: ``http_429``: seconds sent in ``Retry-After``.
    :param hang_seconds: ``hang``, ``accept_then_hang``: how long the server holds the call
        before dropping it.
    :param amount: ``odd_amount``: the JSON text sent as the amount (``"1_000"`` with its quotes is
        a string, ``1E+400`` a number).
    :param depth: ``deep_nesting``: how many arrays deep the unknown field goes.
    """

    kind: str
    endpoint: str = "*"
    probability: float = 1.0
    trade_no: str | None = None
    nth: tuple[int, ...] | None = None
    latency_ms: float = 0.0
    latency_max_ms: float | None = None
    latency_sigma: float | None = None
    retry_after: int = 1
    hang_seconds: float = 30.0
    amount: str = "0.00004999"
    depth: int = 400

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")

    def matches(self, endpoint: str, trade_no: str, nth: int) -> bool:
        return (
            (self.endpoint == "*" or self.endpoint == endpoint)
            and (self.trade_no is None or self.trade_no == trade_no)
            and (self.nth is None or nth in self.nth)
        )

    def delay(self, u: float) -> float:
        """Seconds of delay for a ``latency`` rule, given a uniform draw ``u``."""
        if self.latency_sigma is not None:
            z = _NORMAL.inv_cdf(min(max(u, 1e-9), 1 - 1e-9))
            return self.latency_ms * math.exp(self.latency_sigma * z) / 1000.0
        if self.latency_max_ms is not None:
            return (self.latency_ms + u * (self.latency_max_ms - self.latency_ms)) / 1000.0
        return self.latency_ms / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from JSON-like data (admin API, CLI)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        if values.get("nth") is not None:
            nth = values["nth"]
            values["nth"] = (int(nth),) if isinstance(nth, int | str) else tuple(int(x) for x in nth)
        return cls(**values)


def parse_fault(text: str) -> FaultRule:
    """Parse the CLI form ``kind=http_503,endpoint=queryPayOutResult,probability=0.1,nth=1;2``."""
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value in fault spec, got {item!r}")
        key = key.strip()
        if key == "nth":
            values[key] = tuple(int(x) for x in value.split(";"))
        elif key in ("probability", "latency_ms", "latency_max_ms", "latency_sigma", "hang_seconds"):
            values[key] = float(value)
        elif key in ("retry_after", "depth"):
            values[key] = int(value)
        else:
            values[key] = value.strip()
    return FaultRule.from_dict(values)


@dataclass
class FaultPlan:
    """The active fault rules, evaluated in the order they were added.

    :param rules: initial rules.
    """

    rules: list[FaultRule] = field(default_factory=list)

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def extend(self, rules: Iterable[FaultRule]) -> None:
        self.rules.extend(rules)

    def clear(self) -> None:
        self.rules.clear()

    def decide(self, seed: int, endpoint: str, trade_no: str, nth: int) -> tuple[float, FaultRule | None]:
        """Return ``(added delay in seconds, the replacing fault or None)`` for one call."""
        delay, chosen = 0.0, None
        for index, rule in enumerate(self.rules):
            if not rule.matches(endpoint, trade_no, nth):
                continue
            if (
                rule.probability < 1.0
                and unit(seed, "fault", index, endpoint, trade_no, nth) >= rule.probability
            ):
                continue
            if rule.kind == "latency":
                delay += rule.delay(unit(seed, "delay", index, endpoint, trade_no, nth))
            elif chosen is None:
                chosen = rule
        return delay, chosen
