"""Why a statement failed: a conflict with another writer, one row's data, or anything else.

* **conflict**: the database aborted the transaction because of another transaction (deadlock,
  serialization failure, lock timeout, SQLite busy). Run it again after a short, bounded backoff.
* **data**: a value the database or its driver refused (DB-API ``DataError``/``IntegrityError``,
  SQLSTATE classes 22 and 23, text the driver cannot encode). One row's fault: the writer splits
  the batch to find it and records that trade as failed.
* **other**: the database is unreachable, a table is missing, a permission is denied… The task
  fails, with the database's reason.
"""

from __future__ import annotations

import random
from typing import Literal

__all__ = ["CONFLICT_ATTEMPTS", "Failure", "backoff", "classify"]

Failure = Literal["conflict", "data", "other"]

#: Tries of one transaction aborted by conflicts (the first included) before giving up.
CONFLICT_ATTEMPTS = 8
_BACKOFF_BASE, _BACKOFF_CAP = 0.05, 2.0

# PostgreSQL: deadlock_detected, serialization_failure, lock_not_available (lock_timeout).
_PG_CONFLICT = frozenset({"40P01", "40001", "55P03"})
# MySQL/MariaDB: ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT.
_MYSQL_CONFLICT = frozenset({1213, 1205})
# MySQL/MariaDB errors about one value (too long, out of range, bad string, bad date, NULL, …),
# for drivers that expose only the error number.
_MYSQL_DATA = frozenset({1048, 1101, 1264, 1265, 1292, 1300, 1366, 1367, 1406, 1411, 1690, 3140})
_SQLITE_BUSY = ("database is locked", "database table is locked", "database schema is locked")
_SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)
_DBAPI_DATA = frozenset({"DataError", "IntegrityError"})


def _sqlstate(exc: BaseException) -> str | None:
    for attribute in ("sqlstate", "pgcode"):  # psycopg 3 / mysql-connector, psycopg2
        value = getattr(exc, attribute, None)
        if isinstance(value, str) and len(value) == 5:
            return value
    diag = getattr(exc, "diag", None)
    value = getattr(diag, "sqlstate", None)
    return value if isinstance(value, str) else None


def _mysql_errno(exc: BaseException) -> int | None:
    errno = getattr(exc, "errno", None)  # mysql-connector
    if isinstance(errno, int) and errno > 0:
        return errno
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL, mysqlclient
        return args[0]
    return None


def classify(exc: BaseException, *, integrity_is_conflict: bool = False) -> Failure:
    """
    Return what kind of failure ``exc`` is.

    :param integrity_is_conflict: treat a unique-key violation as a conflict (a writer that
        inserts after a read, where another writer may have inserted the key in between).
    """
    if isinstance(exc, UnicodeError | OverflowError) or type(exc) is ValueError:
        return "data"  # raised by a driver while converting one parameter
    names = {cls.__name__ for cls in type(exc).__mro__}
    state = _sqlstate(exc)
    if state in _PG_CONFLICT or _mysql_errno(exc) in _MYSQL_CONFLICT:
        return "conflict"
    if "OperationalError" in names:
        code = getattr(exc, "sqlite_errorcode", None)
        if (isinstance(code, int) and code & 0xFF in _SQLITE_BUSY_CODES) or any(
            text in str(exc) for text in _SQLITE_BUSY
        ):
            return "conflict"
    if integrity_is_conflict and ("IntegrityError" in names or state == "23505"):
        return "conflict"
    if names & _DBAPI_DATA or (state is not None and state[:2] in ("22", "23")):
        return "data"
    if _mysql_errno(exc) in _MYSQL_DATA:
        return "data"
    return "other"


def backoff(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1``: exponential from 50 ms, capped at 2 s, jittered."""
    ceiling: float = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)
