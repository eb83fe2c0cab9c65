"""Counting nouns in messages users read: ``1 status``, ``2 statuses``."""

from __future__ import annotations

__all__ = ["count"]

_PLURALS = {"status": "statuses", "entry": "entries"}


def count(n: int, noun: str) -> str:
    """Return ``n`` with ``noun`` in the number it needs, e.g. ``count(1, "status") == "1 status"``."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {_PLURALS.get(noun, noun + 's')}"
