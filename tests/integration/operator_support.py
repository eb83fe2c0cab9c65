"""Shared pieces of the operator's integration tests: warehouse connections, simulator, row reads."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.sdk import BaseHook

from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator
from vexora_provider.testing.faults import FaultRule
from vexora_provider.testing.simulator import VexoraSimulator

MIX = {"success": 0.5, "partial": 0.1, "pending": 0.2, "failed": 0.1, "unknown": 0.1}
# Every column but fetched_at, which legitimately differs between runs.
COMPARED = (
    "merchant_no, trade_no, platform_trade_no, status_code, state, message, "
    "amount, order_amount, pay_amount, success_time, raw"
)


def dsn_connection(dsn: str, conn_type: str, **extra: Any) -> str:
    """Airflow's JSON connection form for a ``scheme://user[:password]@host:port/db`` DSN."""
    parts = urlsplit(dsn)
    conn: dict[str, Any] = {
        "conn_type": conn_type,
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port,
        "login": parts.username,
        "password": parts.password or "",
        "schema": parts.path.lstrip("/"),
    }
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def unique_table(prefix: str = "vx") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def db_hook(conn_id: str) -> DbApiHook:
    hook = BaseHook.get_connection(conn_id).get_hook()  # type: ignore[no-untyped-call]
    assert isinstance(hook, DbApiHook)
    return hook


def drop_tables(conn_id: str, table: str, quote: str = '"') -> None:
    hook = db_hook(conn_id)
    conn = hook.get_conn()
    try:
        cur = conn.cursor()
        for name in (table, f"{table}_errors"):
            cur.execute(f"DROP TABLE IF EXISTS {quote}{name}{quote}")
        conn.commit()
    finally:
        conn.close()


def select(conn_id: str, sql: str) -> list[tuple[Any, ...]]:
    hook = db_hook(conn_id)
    conn = hook.get_conn()
    try:
        cur = conn.cursor()
        cur.execute(sql)
        result = [tuple(r) for r in cur.fetchall()]
        conn.commit()
        return result
    finally:
        conn.close()


def run_sql(conn_id: str, sql: str) -> None:
    hook = db_hook(conn_id)
    conn = hook.get_conn()
    try:
        conn.cursor().execute(sql)
        conn.commit()
    finally:
        conn.close()


def normalise(row: Sequence[Any]) -> tuple[Any, ...]:
    """Make rows from any dialect comparable: Decimal amounts, aware UTC times."""
    out: list[Any] = list(row)
    for i in (6, 7, 8):
        out[i] = None if out[i] is None else Decimal(str(out[i]))
    value = out[9]
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    out[9] = value
    return tuple(out)


def table_rows(conn_id: str, table: str, quote: str = '"') -> list[tuple[Any, ...]]:
    cols = ", ".join(f"{quote}{c.strip()}{quote}" for c in COMPARED.split(","))
    return [normalise(r) for r in select(conn_id, f"SELECT {cols} FROM {quote}{table}{quote} ORDER BY 2")]


def simulator(
    n: int, *, seed: int = 7, faults: Sequence[FaultRule] = ()
) -> tuple[VexoraSimulator, list[str]]:
    sim = VexoraSimulator(seed=seed, faults=faults)
    trades = sim.create_payouts(n, MIX, regions=["nigeria"])
    return sim, trades


@contextmanager
def vexora_connection(sim: VexoraSimulator, conn_id: str = "vexora_it", **extra: Any) -> Iterator[str]:
    """Serve ``sim`` on loopback and expose it as an Airflow connection through the environment."""
    with sim.serve() as server:
        key = f"AIRFLOW_CONN_{conn_id.upper()}"
        os.environ[key] = server.airflow_connection(**extra)
        try:
            yield conn_id
        finally:
            os.environ.pop(key, None)


def run_sync(
    vexora_conn_id: str, sql_conn_id: str, table: str, trade_nos: list[str], **kwargs: Any
) -> dict[str, Any]:
    op = PayoutStatusToSqlOperator(
        task_id="sync",
        vexora_conn_id=vexora_conn_id,
        sql_conn_id=sql_conn_id,
        table=table,
        trade_nos=trade_nos,
        **kwargs,
    )
    op.hook = VexoraHook(vexora_conn_id)
    return op.execute({})


@dataclass(frozen=True)
class Warehouse:
    """A real warehouse for a test: its Airflow connection id, dialect and identifier quote."""

    conn_id: str
    dialect: str
    quote: str

    def q(self, name: str) -> str:
        return f"{self.quote}{name}{self.quote}"

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        return table_rows(self.conn_id, table, self.quote)

    def select(self, sql: str) -> list[tuple[Any, ...]]:
        return select(self.conn_id, sql)

    def drop(self, table: str) -> None:
        drop_tables(self.conn_id, table, self.quote)


def require_mysql_provider() -> None:
    """Skip without Airflow's MySQL provider; fail instead where ``VEXORA_REQUIRE_SERVICES=1`` (CI)."""
    try:
        import airflow.providers.mysql.hooks.mysql  # noqa: F401
    except ImportError as exc:
        message = (
            f"Airflow's MySQL provider is not installed ({exc}): install libmariadb-dev and "
            "pkg-config, then `make clean venv`"
        )
        if os.environ.get("VEXORA_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


def warehouse_connection(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Warehouse:
    """Expose a real SQLite file, PostgreSQL or MariaDB server as the connection ``wh_<kind>``."""
    conn_id = f"wh_{kind}"
    if kind == "sqlite":
        conn = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")})
        quote = '"'
    elif kind == "postgres":
        conn = dsn_connection(request.getfixturevalue("postgres_dsn"), "postgres")
        quote = '"'
    else:
        require_mysql_provider()
        conn = dsn_connection(request.getfixturevalue("mysql_dsn"), "mysql", client="mysql-connector-python")
        quote = "`"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn)
    return Warehouse(conn_id, kind, quote)
