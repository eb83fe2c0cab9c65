"""Fixtures shared by the operator's integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.operator_support import Warehouse, warehouse_connection


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    """Each real warehouse in turn: a SQLite file, the PostgreSQL server, the MariaDB server."""
    return warehouse_connection(request.param, request, tmp_path, monkeypatch)
