"""Kill the sync mid-run (SIGKILL, no cleanup), rerun it, and get the same rows as a clean run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.operator_support import (
    drop_tables,
    dsn_connection,
    run_sync,
    select,
    simulator,
    table_rows,
    unique_table,
    vexora_connection,
)
from vexora_provider.testing.faults import FaultRule

pytestmark = pytest.mark.integration

N = 3000
CHILD = """
import os, sys
from tests.integration.operator_support import run_sync
trades = [f"SIM{i:08d}" for i in range(int(os.environ["N"]))]
run_sync(os.environ["VX"], os.environ["WH"], os.environ["TABLE"], trades, batch_size=100, concurrency=8)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_conn(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite":
        conn = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")})
    else:
        conn = dsn_connection(request.getfixturevalue("postgres_dsn"), "postgres")
    monkeypatch.setenv("AIRFLOW_CONN_WH_KILL", conn)
    return "wh_kill"


def _count(conn_id: str, table: str) -> int:
    try:
        return int(select(conn_id, f'SELECT count(*) FROM "{table}"')[0][0])
    except Exception:  # the child has not created the table yet
        return 0


class TestKillAndRerun:
    def test_converges_to_a_clean_run(self, warehouse_conn: str) -> None:
        killed, clean = unique_table("killed"), unique_table("clean")
        # 10 ms per call keeps the run a few seconds long, so the kill lands mid-way.
        sim, trades = simulator(N, faults=[FaultRule("latency", latency_ms=10)])
        try:
            with vexora_connection(sim) as vexora:
                env = {**os.environ, "N": str(N), "VX": vexora, "WH": warehouse_conn, "TABLE": killed}
                child = subprocess.Popen(
                    [sys.executable, "-c", CHILD], env=env, cwd=Path(__file__).parents[2]
                )
                deadline = time.monotonic() + 120
                while _count(warehouse_conn, killed) < 500 and child.poll() is None:
                    assert time.monotonic() < deadline, "the child loaded nothing"
                    time.sleep(0.05)
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                partial = _count(warehouse_conn, killed)
                assert 0 < partial < N, "the kill did not land mid-run"
                assert partial % 100 == 0  # only whole batches were committed

                rerun = run_sync(vexora, warehouse_conn, killed, trades, batch_size=100)
                run_sync(vexora, warehouse_conn, clean, trades, batch_size=100)
            assert rerun["skipped_terminal"] > 0
            assert rerun["requested"] < N
            assert table_rows(warehouse_conn, killed) == table_rows(warehouse_conn, clean)
            assert len(table_rows(warehouse_conn, killed)) == N
            assert _count(warehouse_conn, f"{killed}_errors") == 0
        finally:
            drop_tables(warehouse_conn, killed)
            drop_tables(warehouse_conn, clean)
