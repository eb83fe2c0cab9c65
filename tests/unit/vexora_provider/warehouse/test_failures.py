from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from vexora_provider.warehouse.failures import CONFLICT_ATTEMPTS, backoff, classify


def error(name: str, message: str = "", base: type[Exception] = Exception, **attributes: Any) -> Exception:
    """An exception of a driver's class ``name`` (only the class name matters to DB-API code)."""
    exc = type(name, (base,), {})(message)
    for key, value in attributes.items():
        setattr(exc, key, value)
    return exc


class TestClassify:
    @pytest.mark.parametrize(
        ("exc", "kind"),
        [
            (error("DeadlockDetected", sqlstate="40P01"), "conflict"),
            (error("SerializationFailure", sqlstate="40001"), "conflict"),
            (error("LockNotAvailable", sqlstate="55P03"), "conflict"),
            (error("TransactionRollbackError", pgcode="40P01"), "conflict"),  # psycopg2
            (error("DatabaseError", errno=1213), "conflict"),  # mysql-connector
            (error("OperationalError", "x", errno=1205), "conflict"),
            (sqlite3.OperationalError("database is locked"), "conflict"),
            (error("DataError", sqlstate="22021"), "data"),
            (error("IntegrityError", sqlstate="23514"), "data"),
            (error("DatabaseError", errno=1366), "data"),  # MySQL: incorrect string value
            (error("InternalError", sqlstate="22P05"), "data"),
            (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), "data"),
            (ValueError("A string literal cannot contain NUL (0x00) characters."), "data"),  # psycopg2
            (OverflowError("date value out of range"), "data"),
            (error("OperationalError", "connection refused"), "other"),
            (sqlite3.OperationalError("no such table: t"), "other"),
            (error("ProgrammingError", sqlstate="42P01"), "other"),
            (RuntimeError("boom"), "other"),
        ],
    )
    def test_kinds(self, exc: Exception, kind: str) -> None:
        assert classify(exc) == kind

    def test_duplicate_key_is_a_conflict_only_where_asked(self) -> None:
        duplicate = error("IntegrityError", sqlstate="23505")
        assert classify(duplicate) == "data"
        assert classify(duplicate, integrity_is_conflict=True) == "conflict"


class TestBackoff:
    def test_bounded_and_growing(self) -> None:
        delays = [backoff(attempt) for attempt in range(1, CONFLICT_ATTEMPTS)]
        assert all(0.025 <= d <= 2.0 for d in delays)
        assert backoff(1) <= 0.05 < 1.0 <= backoff(7)
