"""The sync operator's lineage: datasets before the run, counts and failed trades after it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException
from openlineage.client.serde import Serde

from tests.unit.vexora_provider.operators._fakes import MERCHANT, FakeConfig, FakeHook, failure
from vexora_provider.lineage.sync import ERROR_TEXT_LIMIT, SyncResult, sync_lineage
from vexora_provider.operators._sync import FAILURE_DETAIL_LIMIT, FailedTrade
from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator
from vexora_provider.warehouse import ERROR_COLUMNS, STATUS_COLUMNS, TableName, WarehouseError


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "wh.db"
    monkeypatch.setenv("AIRFLOW_CONN_WH", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path.resolve()


def make(hook: FakeHook, **kwargs: Any) -> PayoutStatusToSqlOperator:
    hook.config = FakeConfig()  # type: ignore[attr-defined]
    op = PayoutStatusToSqlOperator(task_id="sync", sql_conn_id="wh", **kwargs)
    op.hook = hook  # type: ignore[assignment]
    return op


def as_json(value: Any) -> Any:
    return json.loads(Serde.to_json(value))


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


class TestSyncLineage:
    def test_start_names_the_payouts_and_both_tables(self, warehouse: Path) -> None:
        lineage = make(FakeHook(), trade_nos=["T1"], table="payouts").get_openlineage_facets_on_start()
        assert lineage is not None
        assert names(lineage.inputs) == [(f"vexora://{MERCHANT}", "payouts")]
        assert names(lineage.outputs) == [
            ("file", f"{warehouse}/payouts"),
            ("file", f"{warehouse}/payouts_errors"),
        ]
        status, errors = as_json(lineage)["outputs"]
        assert [f["name"] for f in status["facets"]["schema"]["fields"]] == list(STATUS_COLUMNS)
        assert [f["name"] for f in errors["facets"]["schema"]["fields"]] == list(ERROR_COLUMNS)
        assert status["outputFacets"] == {}
        assert lineage.run_facets == {}

    def test_complete_reports_rows_counts_and_failed_trades(self, warehouse: Path) -> None:
        answers = {"F1": failure("F1"), "F2": failure("F2")}
        op = make(FakeHook(answers), trade_nos=["T1", "T2", "T3", "F1", "F2"], max_failed_ratio=0.5)
        summary = op.execute({})
        lineage = as_json(op.get_openlineage_facets_on_complete(None))
        status, errors = lineage["outputs"]
        assert status["outputFacets"]["outputStatistics"]["rowCount"] == summary["loaded"] == 3
        assert errors["outputFacets"]["outputStatistics"]["rowCount"] == summary["failed"] == 2
        facets = lineage["run_facets"]
        error_facet = facets["extractionError"]
        assert (error_facet["totalTasks"], error_facet["failedTasks"]) == (5, 2)
        assert sorted(e["task"] for e in error_facet["errors"]) == ["F1", "F2"]
        assert all(e["errorMessage"].startswith("VexoraHTTPError: ") for e in error_facet["errors"])
        sync = facets["vexoraSync"]
        assert sync["counts"]["loaded"] == 3
        assert sync["counts"]["requested"] == summary["requested"]
        assert sync["byState"] == summary["by_state"]
        assert (sync["table"], sync["errorsTable"]) == ("vexora_payout_status", "vexora_payout_status_errors")
        assert sync["_schemaURL"].endswith("VexoraSyncRunFacet.json#/$defs/VexoraSyncRunFacet")

    def test_no_error_facet_when_nothing_failed(self, warehouse: Path) -> None:
        op = make(FakeHook(), trade_nos=["T1"])
        op.execute({})
        lineage = op.get_openlineage_facets_on_complete(None)
        assert lineage is not None
        assert "extractionError" not in lineage.run_facets

    def test_failure_reports_what_was_committed(self, warehouse: Path) -> None:
        answers = {f"F{i}": failure(f"F{i}") for i in range(4)}
        op = make(FakeHook(answers), trade_nos=["T1", *answers])  # max_failed_ratio 0: fails after loading
        with pytest.raises(AirflowException, match="4 of 5 payout status lookups failed"):
            op.execute({})
        lineage = as_json(op.get_openlineage_facets_on_failure(None))
        status, errors = lineage["outputs"]
        assert status["outputFacets"]["outputStatistics"]["rowCount"] == 1
        assert errors["outputFacets"]["outputStatistics"]["rowCount"] == 4
        assert lineage["run_facets"]["extractionError"]["failedTasks"] == 4

    def test_failure_before_any_batch_still_names_the_datasets(
        self, warehouse: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from vexora_provider.warehouse.sqlite import SqliteWriter

        def broken(self: Any, *args: Any, **kwargs: Any) -> None:
            raise WarehouseError("writing batch 1 failed")

        monkeypatch.setattr(SqliteWriter, "write_batch", broken)
        op = make(FakeHook(), trade_nos=["T1"])
        with pytest.raises(WarehouseError):
            op.execute({})
        lineage = op.get_openlineage_facets_on_failure(None)
        assert lineage is not None
        assert [d.outputFacets["outputStatistics"].rowCount for d in lineage.outputs] == [0, 0]

    def test_trade_nos_sql_reads_a_table(self, warehouse: Path) -> None:
        sql = "SELECT trade_no FROM payout_batches WHERE batch_id = 'b1'"
        lineage = make(FakeHook(), trade_nos_sql=sql).get_openlineage_facets_on_start()
        assert lineage is not None
        assert names(lineage.inputs)[1:] == [("file", f"{warehouse}/payout_batches")]
        assert lineage.job_facets["sql"].query == sql

    def test_lineage_asks_the_gateway_nothing(self, warehouse: Path) -> None:
        hook = FakeHook()
        op = make(hook, trade_nos=["T1", "T2"])
        op.get_openlineage_facets_on_start()
        op.execute({})
        asked = list(hook.session.asked)
        op.get_openlineage_facets_on_complete(None)
        assert hook.session.asked == asked == ["T1", "T2"]

    @pytest.mark.usefixtures("without_openlineage")
    def test_without_openlineage_the_methods_return_none(self, warehouse: Path) -> None:
        op = make(FakeHook(), trade_nos=["T1"])
        assert op.get_openlineage_facets_on_start() is None
        assert op.execute({})["loaded"] == 1
        assert op.get_openlineage_facets_on_complete(None) is None
        assert op.get_openlineage_facets_on_failure(None) is None


class TestRunFacets:
    def result(self, failed: int, **extra: int) -> SyncResult:
        summary = {"table": "t", "errors_table": "t_errors", "requested": 10, "loaded": 10 - failed}
        summary |= {
            "failed": failed,
            "by_state": {"success": 10 - failed},
            "failed_ratio": failed / 10,
            **extra,
        }
        long = "x" * (ERROR_TEXT_LIMIT * 2)
        failures = [FailedTrade(f"F{i}", "VexoraHTTPError", long) for i in range(min(failed, 3))]
        return SyncResult(summary=summary, failures=failures)

    def test_error_texts_are_capped_and_the_total_kept(self, warehouse: Path) -> None:
        from airflow.providers.sqlite.hooks.sqlite import SqliteHook

        lineage = sync_lineage(
            merchant_no=MERCHANT,
            hook=SqliteHook(sqlite_conn_id="wh"),
            table=TableName.parse("t"),
            trade_nos_sql=None,
            result=self.result(failed=7, duplicates_dropped=2),
        )
        error_facet = lineage.run_facets["extractionError"]
        assert (error_facet.failedTasks, len(error_facet.errors)) == (7, 3)
        assert {len(e.errorMessage) for e in error_facet.errors} == {ERROR_TEXT_LIMIT}
        # every count of the summary is carried, new ones included
        assert lineage.run_facets["vexoraSync"].counts["duplicates_dropped"] == 2


class TestFailureDetail:
    def test_collected_up_to_the_limit_while_all_are_counted(self, warehouse: Path) -> None:
        n = FAILURE_DETAIL_LIMIT + 50
        answers = {f"F{i:04d}": failure(f"F{i:04d}") for i in range(n)}
        op = make(FakeHook(answers), trade_nos=list(answers), max_failed_ratio=1.0, batch_size=40)
        assert op.execute({})["failed"] == n
        assert op._last_sync is not None
        failures = op._last_sync[0].counters.failures
        assert len(failures) == FAILURE_DETAIL_LIMIT
        assert all(f.error_type == "VexoraHTTPError" for f in failures)
