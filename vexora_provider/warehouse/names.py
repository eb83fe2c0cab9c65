"""Warehouse table names: validated before any SQL is built, then quoted per dialect."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TableName"]

# Postgres allows 63-byte identifiers, MySQL 64; keep room for the "_errors" suffix.
_NAME_PART = r"[A-Za-z_][A-Za-z0-9_]{0,55}"
_TABLE_RE = re.compile(rf"(?:({_NAME_PART})\.)?({_NAME_PART})")


@dataclass(frozen=True, slots=True)
class TableName:
    """
    A validated ``[schema.]table`` name; anything else is refused before any SQL runs.

    :param schema: the schema, or ``None`` for the connection's default.
    :param name: the table name.
    """

    schema: str | None
    name: str

    @classmethod
    def parse(cls, value: object) -> TableName:
        """Validate ``[schema.]name`` made of ``[A-Za-z_][A-Za-z0-9_]*`` parts (at most 56 characters)."""
        match = _TABLE_RE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError(
                f"table {value!r} is not a plain [schema.]name: each part must match "
                "[A-Za-z_][A-Za-z0-9_]* and be at most 56 characters"
            )
        return cls(schema=match.group(1), name=match.group(2))

    @property
    def errors(self) -> TableName:
        """The table that records failed lookups: ``<table>_errors`` in the same schema."""
        return TableName(self.schema, f"{self.name}_errors")

    def quoted(self, quote: str) -> str:
        """Return the name quoted with ``quote`` (``"`` or a backtick), schema first."""
        parts = (self.schema, self.name) if self.schema else (self.name,)
        return ".".join(f"{quote}{part}{quote}" for part in parts)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name
