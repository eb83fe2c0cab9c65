"""Test-wide setup: an isolated Airflow home, and the real servers' DSNs from the environment.

Unit tests need no Airflow metadata database. Integration tests read their servers from
``VEXORA_TEST_POSTGRES_DSN``, ``VEXORA_TEST_MYSQL_DSN``, ``VEXORA_TEST_REDIS_URL`` (the shared
budget's storage) and ``VEXORA_TEST_CELERY_BROKER_URL`` (defaults: the loopback servers our
machines run; Redis databases 10 and 12). Where a server does not answer, its tests are skipped, unless
``VEXORA_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns that into a failure.
"""

from __future__ import annotations

import os
import socket
import tempfile
from urllib.parse import urlsplit

import pytest

# Before anything imports airflow: never touch the developer's own ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="vexora-test-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
DEFAULT_CELERY_BROKER_URL = "redis://127.0.0.1:6379/12"


def _answers(dsn: str) -> bool:
    parts = urlsplit(dsn)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def _service_dsn(variable: str, default: str, name: str) -> str:
    dsn = os.environ.get(variable, default)
    if not _answers(dsn):
        message = f"{name} does not answer at {dsn} (set {variable})"
        if os.environ.get("VEXORA_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return dsn


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of a real PostgreSQL server (trust auth), from ``VEXORA_TEST_POSTGRES_DSN``."""
    return _service_dsn("VEXORA_TEST_POSTGRES_DSN", DEFAULT_POSTGRES_DSN, "PostgreSQL")


@pytest.fixture(scope="session")
def mysql_dsn() -> str:
    """DSN of a real MariaDB/MySQL server, from ``VEXORA_TEST_MYSQL_DSN``."""
    return _service_dsn("VEXORA_TEST_MYSQL_DSN", DEFAULT_MYSQL_DSN, "MariaDB")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis database for the shared gateway budget, from ``VEXORA_TEST_REDIS_URL``."""
    return _service_dsn("VEXORA_TEST_REDIS_URL", DEFAULT_REDIS_URL, "Redis")


@pytest.fixture(scope="session")
def celery_broker_url() -> str:
    """URL of the Redis database Celery uses as broker, from ``VEXORA_TEST_CELERY_BROKER_URL``."""
    return _service_dsn("VEXORA_TEST_CELERY_BROKER_URL", DEFAULT_CELERY_BROKER_URL, "Redis (Celery broker)")


# A test uses our deprecated arguments only inside pytest.warns. Added per test, not in the
# pytest configuration: resolving the category there would import Airflow before the isolated
# AIRFLOW_HOME above is set.
_NO_DEPRECATED_USE = pytest.mark.filterwarnings("error::vexora_provider.exceptions.VexoraDeprecationWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        own = [str(m.args) for m in item.iter_markers("filterwarnings")]
        if not any("VexoraDeprecationWarning" in args for args in own):  # a test may show it
            item.add_marker(_NO_DEPRECATED_USE)
