"""10,000 trades against the simulator with a seeded mix of faults: each ends loaded or recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.integration.operator_support import run_sync, simulator, vexora_connection
from vexora_provider.testing.faults import FaultRule

pytestmark = pytest.mark.integration

FAULTS = [
    FaultRule("http_500", probability=0.08),
    FaultRule("http_503", probability=0.02),
    FaultRule("code_5000", probability=0.02),
    FaultRule("code_8000", probability=0.02),
    FaultRule("malformed_json", probability=0.02),
    FaultRule("truncated", probability=0.01),
    FaultRule("reset", probability=0.01),
    FaultRule("http_429", probability=0.002, retry_after=0),
]


class TestSeededFaults:
    def test_every_trade_loaded_or_recorded(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        db = tmp_path / "w.db"
        monkeypatch.setenv("AIRFLOW_CONN_WH_FAULTS", json.dumps({"conn_type": "sqlite", "host": str(db)}))
        sim, trades = simulator(10_000, seed=11, faults=FAULTS)
        with vexora_connection(sim, max_attempts=2) as vexora:
            summary = run_sync(vexora, "wh_faults", "payouts", trades, max_failed_ratio=1, concurrency=64)
            with sqlite3.connect(db) as conn:
                loaded = {r[0] for r in conn.execute("SELECT trade_no FROM payouts")}
                failed = {r[0] for r in conn.execute("SELECT trade_no FROM payouts_errors")}
            assert summary["requested"] == 10_000
            assert summary["retries"] > 0
            assert 0 < summary["failed"] == len(failed)
            assert summary["loaded"] == len(loaded)
            assert loaded | failed == set(trades)
            assert not loaded & failed
            assert len(json.dumps(summary)) < 2000

            # The next run, with the gateway healthy, picks up exactly the failures and clears them.
            sim.clear_faults()
            again = run_sync(vexora, "wh_faults", "payouts", trades, max_failed_ratio=0)
            with sqlite3.connect(db) as conn:
                assert conn.execute("SELECT count(*) FROM payouts_errors").fetchone() == (0,)
                assert conn.execute("SELECT count(*) FROM payouts").fetchone() == (10_000,)
            assert again["failed"] == 0
            assert again["requested"] == 10_000 - again["skipped_terminal"]
