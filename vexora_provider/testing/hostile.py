"""Hostile answers: the payout's real answer, well-formed JSON, with one field a client must survive.

Unlike the other faults, these do not replace the answer: the payout's lifecycle moves on as
usual and the gateway answers ``code`` ``0000``; only the ``data`` object carries something odd.
A robust client stores the rest of its batch and records this one trade (or stores it, where the
value is fine for its table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vexora_provider.testing.faults import FaultRule
    from vexora_provider.testing.regions import RegionVariant

__all__ = ["HOSTILE_KINDS", "hostile_fields"]

#: ``kind`` → what it does to ``data`` (documented in the simulator guide).
HOSTILE_KINDS: dict[str, str] = {
    "surrogate_message": 'message holds a lone surrogate ("\\ud800"): not valid Unicode text',
    "nul_message": "message holds a NUL character (PostgreSQL text cannot)",
    "nul_status": 'status is "0000" followed by a NUL character',
    "nul_platform_trade_no": "platFormTradeNo holds a NUL character",
    "deep_nesting": "an unknown field nested ``depth`` arrays deep (default 400)",
    "time_max": 'successTime is "9999-12-31 23:59:59" (past year 9999 in UTC for a UTC- region)',
    "time_min": 'successTime is "0001-01-01 00:00:00" (before year 1 in UTC for a UTC+ region)',
    "odd_amount": "the amount (amount or payAmount, per region) is ``amount``, raw JSON text",
}


def hostile_fields(rule: FaultRule, variant: RegionVariant) -> dict[str, str]:
    """``data`` members (name → JSON text) that replace or join the payout's own answer."""
    kind = rule.kind
    if kind == "surrogate_message":
        return {"message": '"lone \\ud800 surrogate"'}
    if kind == "nul_message":
        return {"message": '"nul \\u0000 inside"'}
    if kind == "nul_status":
        return {"status": '"0000\\u0000"'}
    if kind == "nul_platform_trade_no":
        return {"platFormTradeNo": '"VX\\u0000"'}
    if kind == "deep_nesting":
        return {"channelData": "[" * rule.depth + "]" * rule.depth}
    if kind == "time_max":
        return {"successTime": '"9999-12-31 23:59:59"'}
    if kind == "time_min":
        return {"successTime": '"0001-01-01 00:00:00"'}
    if kind == "odd_amount":
        return {"amount" if variant.amount_fields == "amount" else "payAmount": rule.amount}
    raise ValueError(f"{kind!r} is not a hostile answer")
