"""The operator against real MariaDB through Airflow's MySQL provider: fast path and generic path.

Both drivers the provider offers are used: ``mysqlclient`` (its default, the one most deployments
run) and ``mysql-connector-python``. ``make venv`` installs the provider with its ``mysqlclient``
dependency where the MariaDB client headers are present (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.integration.operator_support import (
    drop_tables,
    dsn_connection,
    require_mysql_provider,
    run_sync,
    select,
    simulator,
    table_rows,
    unique_table,
    vexora_connection,
)
from vexora_provider import warehouse

pytestmark = pytest.mark.integration


@pytest.fixture(params=["mysqlclient", "mysql-connector-python"])
def maria(mysql_dsn: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    require_mysql_provider()
    monkeypatch.setenv("AIRFLOW_CONN_WH_MARIA", dsn_connection(mysql_dsn, "mysql", client=request.param))
    table = unique_table()
    yield table
    drop_tables("wh_maria", table, quote="`")


class TestMariaDbTarget:
    @pytest.mark.parametrize("path", ["mysql", "generic"])
    def test_same_rows_as_sqlite_rerun_and_failures(
        self, path: str, maria: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_WH_LITE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")})
        )

        def forced(hook: Any, table: warehouse.TableName) -> warehouse.WarehouseWriter:
            return warehouse.writer_for(hook, table, dialect=path if hook.dialect_name == "mysql" else None)

        sim, trades = simulator(800)
        with (
            vexora_connection(sim, max_attempts=1) as vexora,
            mock.patch("vexora_provider.operators.payout_status.writer_for", forced),
        ):
            summary = run_sync(
                vexora, "wh_maria", maria, trades + trades[:30], batch_size=300, only_non_terminal=False
            )
            rows = table_rows("wh_maria", maria, quote="`")
            assert (summary["loaded"], summary["duplicates"]) == (800, 30)
            assert len(rows) == 800
            run_sync(vexora, "wh_lite", maria, trades)
            assert rows == table_rows("wh_lite", maria)
            run_sync(vexora, "wh_maria", maria, trades, only_non_terminal=False, batch_size=128)
            assert table_rows("wh_maria", maria, quote="`") == rows

            # A failing lookup of a pending payout lands in the errors table and leaves the known
            # row alone; beside a final status it is not recorded at all.
            from vexora_provider.testing.faults import FaultRule

            pending = next(t for t in trades if sim.payout(t).final_code is None)
            final = next(t for t in trades if sim.payout(t).final_code is not None)
            sim.faults.add(FaultRule("http_503", trade_no=pending))
            sim.faults.add(FaultRule("http_503", trade_no=final))
            failed = run_sync(
                vexora, "wh_maria", maria, [pending, final], only_non_terminal=False, max_failed_ratio=1
            )
            assert (failed["failed"], failed["failures_superseded"]) == (1, 1)
            assert table_rows("wh_maria", maria, quote="`") == rows
            assert select("wh_maria", f"SELECT trade_no FROM `{maria}_errors`") == [(pending,)]
            sim.clear_faults()
            run_sync(vexora, "wh_maria", maria, [pending], only_non_terminal=False)
            assert select("wh_maria", f"SELECT count(*) FROM `{maria}_errors`") == [(0,)]
        assert summary["by_state"] == {k: v for k, v in summary["by_state"].items() if v}

    def test_trade_numbers_differing_in_case_stay_apart(self, maria: str) -> None:
        sim, _ = simulator(0)
        sim.add_payout("CaseX1", "success", region="nigeria")
        sim.add_payout("casex1", "failed", region="nigeria")
        with vexora_connection(sim) as vexora:
            run_sync(vexora, "wh_maria", maria, ["CaseX1", "casex1"])
        assert sorted(select("wh_maria", f"SELECT trade_no, state FROM `{maria}`")) == [
            ("CaseX1", "success"),
            ("casex1", "failed"),
        ]
