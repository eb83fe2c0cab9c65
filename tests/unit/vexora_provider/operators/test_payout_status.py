from __future__ import annotations

import dataclasses
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pendulum
import pytest
from airflow.sdk import DAG, Asset, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from tests.unit.vexora_provider.operators._fakes import MERCHANT, FakeConfig, FakeHook, failure, status
from vexora_provider.assets import payouts_asset, settlements_from_events
from vexora_provider.operators import payout_status as payout_status_module
from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator
from vexora_provider.warehouse import WarehouseError


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "wh.db"
    monkeypatch.setenv("AIRFLOW_CONN_WH", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


def make(hook: FakeHook, **kwargs: Any) -> PayoutStatusToSqlOperator:
    kwargs.setdefault("sql_conn_id", "wh")
    op = PayoutStatusToSqlOperator(task_id="sync", **kwargs)
    op.hook = hook  # type: ignore[assignment]
    return op


def rows(path: Path, table: str = "vexora_payout_status") -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY trade_no').fetchall()


class TestPayoutStatusToSqlOperator:
    @pytest.mark.parametrize(
        "kwargs",
        [{}, {"trade_nos": ["A"], "trade_nos_sql": "select 1"}],
        ids=["neither", "both"],
    )
    def test_needs_exactly_one_input(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match="exactly one"):
            PayoutStatusToSqlOperator(task_id="t", sql_conn_id="wh", **kwargs)

    @pytest.mark.parametrize(
        "table",
        ["x; DROP TABLE y", "a.b.c", "1abc", "a-b", 'a"b', "a`b", "", "x" * 57, "s.", ".t", "tbl "],
    )
    def test_bad_table_refused_at_init(self, table: str) -> None:
        with pytest.raises(ValueError, match="not a plain"):
            PayoutStatusToSqlOperator(task_id="t", sql_conn_id="wh", trade_nos=["A"], table=table)

    def test_templated_table_refused_in_execute_before_any_sql(self) -> None:
        op = make(FakeHook(), trade_nos=["A"], table="{{ params.t }}")
        op.table = "payouts; DROP TABLE payouts"  # as rendered
        with mock.patch.object(op, "get_db_hook") as get_db_hook, pytest.raises(ValueError, match="not a"):
            op.execute({})
        get_db_hook.assert_not_called()

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"concurrency": 0}, "at least 1"),
            ({"batch_size": 0}, "at least 1"),
            ({"max_failed_ratio": 1.5}, "between 0 and 1"),
            ({"progress_interval": 0}, "positive"),
        ],
    )
    def test_bad_numbers_refused(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            PayoutStatusToSqlOperator(task_id="t", sql_conn_id="wh", trade_nos=["A"], **kwargs)

    def test_xcom_input_wires_the_upstream(self) -> None:
        with DAG("d", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):

            @task
            def pick() -> list[str]:
                return ["A"]

            up = pick()
            op = PayoutStatusToSqlOperator(task_id="sync", sql_conn_id="wh", trade_nos=up)
        assert "trade_nos" in PayoutStatusToSqlOperator.template_fields
        assert op.upstream_task_ids == {"pick"}

    def test_literal_list_is_not_rendered_item_by_item(self) -> None:
        op = PayoutStatusToSqlOperator(task_id="t", sql_conn_id="wh", trade_nos=["A"])
        with mock.patch("airflow.sdk.BaseOperator.render_template") as base:
            assert op.render_template(["A", "B"], {}) == ["A", "B"]
        base.assert_not_called()
        assert op.render_template(["{{ 1 + 1 }}"], {}) == ["2"]

    def test_list_rendered_as_text_is_that_list(self, warehouse: Path) -> None:
        op = make(hook := FakeHook(), trade_nos="{{ ti.xcom_pull('pick') }}")
        op.trade_nos = "['A', ' B', 'A']"  # what a non-native Jinja render of an XCom gives
        summary = op.execute({})
        assert sorted(hook.session.asked) == ["A", "B"]
        assert (summary["total"], summary["duplicates"], summary["requested"]) == (3, 1, 2)

    def test_one_string_is_one_trade(self, warehouse: Path) -> None:
        summary = make(hook := FakeHook(), trade_nos=" A ").execute({})
        assert hook.session.asked == ["A"]
        assert summary["loaded"] == 1

    @pytest.mark.parametrize(
        ("value", "match"),
        [
            ("ORD-1,ORD-2", "did you mean a list"),
            ("ORD-1 ORD-2", "did you mean a list"),
            ({"A": 1}, "mapping"),
            (2.5, "not float"),
        ],
    )
    def test_mistakes_are_refused_when_the_dag_is_parsed(self, value: object, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            PayoutStatusToSqlOperator(task_id="t", sql_conn_id="wh", trade_nos=value)

    def test_a_literal_entry_that_is_not_a_trade_number_costs_that_trade_only(self, warehouse: Path) -> None:
        summary = make(FakeHook(), trade_nos=["A", "Z" * 40, None], max_failed_ratio=1).execute({})
        assert (summary["loaded"], summary["failed"]) == (1, 2)

    def test_a_rendered_mistake_fails_without_retries_before_any_sql(self) -> None:
        op = make(FakeHook(), trade_nos="{{ params.t }}")
        op.trade_nos = "A,B"  # as rendered
        with mock.patch.object(op, "get_db_hook") as get_db_hook:
            get_db_hook.return_value.__class__ = mock.MagicMock
            with pytest.raises(AirflowFailException, match="did you mean a list"):
                op.execute({})

    def test_loads_every_state_and_returns_a_small_summary(self, warehouse: Path) -> None:
        states = ["success", "partial", "pending", "failed", "unknown"]
        answers = {f"T{i:05d}": states[i % 5] for i in range(2500)}
        hook = FakeHook(answers)
        summary = make(hook, trade_nos=list(answers), batch_size=300, concurrency=7).execute({})
        assert hook.concurrency == 7
        assert summary["loaded"] == summary["requested"] == summary["total"] == 2500
        assert summary["by_state"] == dict.fromkeys(sorted(states), 500)
        assert summary["failed"] == 0
        assert summary["batches"] == 9
        assert (summary["table"], summary["errors_table"]) == (
            "vexora_payout_status",
            "vexora_payout_status_errors",
        )
        assert len(json.dumps(summary)) < 1000
        stored = rows(warehouse)
        assert len(stored) == 2500
        unknown = next(r for r in stored if r[4] == "unknown")
        assert unknown[3] == "0042"  # the raw code is kept

    def test_row_content(self, warehouse: Path) -> None:
        make(FakeHook(), trade_nos=["A1"]).execute({})
        (row,) = rows(warehouse)
        merchant, trade, platform, code, state, message, amount, order, pay, success, fetched, raw = row
        assert (merchant, trade, platform, code, state, message) == (
            MERCHANT,
            "A1",
            "VXA1",
            "0000",
            "success",
            "success",
        )
        assert Decimal(amount) == Decimal("300.00")
        assert order is None
        assert pay is None
        assert success == "2026-01-02 09:00:00.000000+00:00"  # Lagos is UTC+1
        assert fetched.endswith("+00:00")
        assert json.loads(raw)["amount"] == "300.00"

    def test_rerun_is_idempotent_and_skips_terminal(self, warehouse: Path) -> None:
        answers = {"A": "success", "B": "pending", "C": "failed"}
        make(FakeHook(answers), trade_nos=list(answers)).execute({})
        first = [r[:10] for r in rows(warehouse)]
        hook = FakeHook(answers)
        summary = make(hook, trade_nos=list(answers)).execute({})
        assert hook.session.asked == ["B"]
        assert summary["skipped_terminal"] == 2
        assert [r[:10] for r in rows(warehouse)] == first
        hook = FakeHook(answers)
        make(hook, trade_nos=list(answers), only_non_terminal=False).execute({})
        assert sorted(hook.session.asked) == ["A", "B", "C"]
        assert [r[:10] for r in rows(warehouse)] == first

    def test_in_batch_duplicates_latest_wins(self, warehouse: Path) -> None:
        summary = make(hook := FakeHook(), trade_nos=["A", "A", "B", " A"]).execute({})
        assert (summary["total"], summary["duplicates"], summary["requested"], summary["loaded"]) == (
            4,
            2,
            2,
            2,
        )
        assert sorted(hook.session.asked) == ["A", "B"]  # each fetched once
        assert [r[1] for r in rows(warehouse)] == ["A", "B"]

    def test_failure_is_recorded_and_never_overwrites(self, warehouse: Path) -> None:
        make(FakeHook({"A": "pending"}), trade_nos=["A"]).execute({})
        before = rows(warehouse)
        hook = FakeHook({"A": failure("A"), "B": failure("B"), "C": "success"})
        summary = make(hook, trade_nos=["A", "B", "C"], max_failed_ratio=1.0).execute({})
        assert summary["failed"] == 2
        assert sorted(summary["failed_sample"]) == ["A", "B"]
        assert [r for r in rows(warehouse) if r[1] == "A"] == before
        errors = rows(warehouse, "vexora_payout_status_errors")
        assert [(e[1], e[2], e[4]) for e in errors] == [
            ("A", "VexoraHTTPError", 4),
            ("B", "VexoraHTTPError", 4),
        ]
        # A later successful load clears the trade's error row in the same transaction.
        make(FakeHook({"A": "success"}), trade_nos=["A"]).execute({})
        assert [e[1] for e in rows(warehouse, "vexora_payout_status_errors")] == ["B"]

    def test_fails_after_loading_when_too_many_fail(self, warehouse: Path) -> None:
        answers: dict[str, Any] = {f"T{i}": "success" for i in range(98)}
        answers.update({"X1": failure("X1"), "X2": failure("X2")})
        with pytest.raises(
            AirflowException, match=r"2 of 100 .*98 statuses loaded .*vexora_payout_status_errors"
        ):
            make(FakeHook(answers), trade_nos=list(answers), max_failed_ratio=0.01).execute({})
        assert len(rows(warehouse)) == 98
        summary = make(
            FakeHook(answers), trade_nos=list(answers), max_failed_ratio=0.05, only_non_terminal=False
        ).execute({})
        assert summary["failed"] == 2

    def test_invalid_trade_numbers_are_recorded_as_failures(self, warehouse: Path) -> None:
        summary = make(FakeHook(), trade_nos=["OK", "Z" * 40], max_failed_ratio=1).execute({})
        assert (summary["loaded"], summary["failed"]) == (1, 1)
        assert rows(warehouse, "vexora_payout_status_errors")[0][2] == "VexoraInvalidTradeNoError"

    @pytest.mark.parametrize("only_non_terminal", [True, False])
    def test_values_that_are_not_strings_are_recorded_as_failures(
        self, warehouse: Path, only_non_terminal: bool
    ) -> None:
        # What a mis-shaped XCom gives: nested lists, dicts, None, numbers among the trade numbers.
        trade_nos: list[Any] = ["OK", ["nested"], {"k": 1}, None, 7, 2.5]
        op = make(FakeHook(), trade_nos=["x"], max_failed_ratio=1, only_non_terminal=only_non_terminal)
        op.trade_nos = trade_nos
        summary = op.execute({})
        assert (summary["total"], summary["requested"], summary["loaded"], summary["failed"]) == (6, 6, 2, 4)
        errors = rows(warehouse, "vexora_payout_status_errors")
        # An int is its digits ("7" is loaded); the rest are recorded, each under its own text.
        assert sorted(e[1] for e in errors) == sorted(["['nested']", "{'k': 1}", "None", "2.5"])
        assert {e[2] for e in errors} == {"VexoraInvalidTradeNoError"}

    def test_amounts_are_stored_digit_for_digit(self, warehouse: Path) -> None:
        answers = {
            t: status(t, amount=a) for t, a in [("S", "0.00004999"), ("P", "99.99999"), ("H", "1E+400")]
        }
        make(FakeHook(answers), trade_nos=list(answers)).execute({})
        assert {r[1]: r[6] for r in rows(warehouse)} == {"S": "0.00004999", "P": "99.99999", "H": "1E+400"}

    def test_a_value_the_table_cannot_hold_is_a_recorded_failure(self, warehouse: Path) -> None:
        odd = status("ODD")
        hook = FakeHook({"ODD": dataclasses.replace(odd, message="lone \ud800")})
        summary = make(hook, trade_nos=["ODD", "FINE"], max_failed_ratio=1).execute({})
        assert (summary["loaded"], summary["failed"], summary["unstorable"]) == (1, 1, 1)
        (error,) = rows(warehouse, "vexora_payout_status_errors")
        assert error[1:4] == (
            "ODD",
            "UnstorableValue",
            "message: contains a lone surrogate (U+D800), which is not valid Unicode text",
        )

    def test_a_final_state_replaced_by_another_is_applied_and_logged(self, warehouse: Path) -> None:
        make(FakeHook({"R": "success"}), trade_nos=["R"]).execute({})
        op = make(FakeHook({"R": "failed"}), trade_nos=["R"], only_non_terminal=False)
        with mock.patch.object(type(op), "log", new_callable=mock.PropertyMock) as log:
            summary = op.execute({})
        assert summary["reversals"] == 1
        assert rows(warehouse)[0][4] == "failed"
        log.return_value.warning.assert_any_call(mock.ANY, "R", "success", "failed")

    def test_a_failure_beside_a_final_status_is_not_recorded(self, warehouse: Path) -> None:
        make(FakeHook({"A": "success"}), trade_nos=["A"]).execute({})
        summary = make(FakeHook({"A": failure("A")}), trade_nos=["A"], only_non_terminal=False).execute({})
        assert (summary["failed"], summary["failures_superseded"]) == (0, 1)
        assert rows(warehouse, "vexora_payout_status_errors") == []

    def test_trade_nos_sql(self, warehouse: Path) -> None:
        with sqlite3.connect(warehouse) as conn:
            conn.execute("CREATE TABLE payouts (trade_no TEXT)")
            conn.executemany("INSERT INTO payouts VALUES (?)", [("P1",), ("P2",), (None,), (" P1",)])
        hook = FakeHook()
        summary = make(hook, trade_nos_sql="SELECT trade_no FROM payouts").execute({})
        assert sorted(hook.session.asked) == ["P1", "P2"]
        assert (summary["loaded"], summary["duplicates"]) == (2, 1)

    def test_trade_nos_sql_bytes_are_decoded_or_recorded(self, warehouse: Path) -> None:
        with sqlite3.connect(warehouse) as conn:
            conn.execute("CREATE TABLE payouts (trade_no BLOB)")
            conn.executemany("INSERT INTO payouts VALUES (?)", [(b"P1",), (b"\xffP2",), (42,), (b"\xffP2",)])
        hook = FakeHook()
        summary = make(hook, trade_nos_sql="SELECT trade_no FROM payouts", max_failed_ratio=1).execute({})
        assert (summary["loaded"], summary["failed"], summary["duplicates"]) == (2, 1, 1)
        assert sorted(hook.session.asked) == ["42", "P1"]  # never "b'P1'"
        assert [r[1] for r in rows(warehouse)] == ["42", "P1"]
        errors = rows(warehouse, "vexora_payout_status_errors")
        assert [(e[1], e[2]) for e in errors] == [("\\xffP2", "VexoraInvalidTradeNoError")]  # escaped
        assert "UTF-8" in errors[0][3]

    def test_schema_qualified_table_and_no_create(self, warehouse: Path) -> None:
        op = make(FakeHook(), trade_nos=["A"], table="main.custom_status")
        op.execute({})
        assert len(rows(warehouse, "custom_status")) == 1
        op = make(FakeHook(), trade_nos=["A"], table="missing_table", create_table=False)
        with pytest.raises(WarehouseError, match="missing_table"):
            op.execute({})

    def test_db_errors_name_the_table_not_the_values(self, warehouse: Path) -> None:
        with sqlite3.connect(warehouse) as conn:
            conn.execute('CREATE TABLE "vexora_payout_status" (merchant_no TEXT, trade_no TEXT)')
        with pytest.raises(WarehouseError) as info:
            make(FakeHook(), trade_nos=["SECRET_TRADE"], create_table=False).execute({})
        assert "vexora_payout_status" in str(info.value)
        assert "SECRET_TRADE" not in str(info.value)

    def test_sql_conn_must_be_a_dbapi_hook(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_NOTSQL", json.dumps({"conn_type": "vexora", "host": "https://x", "login": "m"})
        )
        op = make(FakeHook(), trade_nos=["A"], sql_conn_id="notsql")
        with pytest.raises(AirflowException, match="not a common-sql DbApiHook"):
            op.execute({})


class MerchantHook(FakeHook):
    """The fake hook with the connection's merchant, which a payouts outlet is checked against."""

    config = FakeConfig()


def run_with_outlets(hook: FakeHook, outlets: list[Any], **kwargs: Any) -> tuple[dict[str, Any], Any]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    events = OutletEventAccessors()
    op = make(hook, outlets=outlets, **kwargs)
    summary = op.execute({"outlet_events": events})  # type: ignore[typeddict-item]
    return summary, events


class TestPayoutStatusToSqlOperatorOutlet:
    def test_payouts_outlet_lists_what_became_final(self, warehouse: Path) -> None:
        answers = {"A": "success", "B": "pending", "C": "failed", "D": "unknown", "E": "partial"}
        asset = payouts_asset(MERCHANT)
        _, events = run_with_outlets(MerchantHook(answers), [asset], trade_nos=list(answers))
        assert events[asset].extra == {
            "source": "sync",
            "merchant_no": MERCHANT,
            "settled": [
                {"trade_no": "A", "state": "success"},
                {"trade_no": "C", "state": "failed"},
                {"trade_no": "E", "state": "partial"},
            ],
            "counts": {"failed": 1, "partial": 1, "success": 1},
            "total": 3,
            "truncated": False,
        }
        assert settlements_from_events([events[asset]])[0]["trade_no"] == "A"

    @pytest.mark.parametrize("only_non_terminal", [True, False], ids=["skipped", "refetched"])
    def test_rerun_announces_only_new_settlements(self, warehouse: Path, only_non_terminal: bool) -> None:
        asset = payouts_asset(MERCHANT)
        run_with_outlets(MerchantHook({"A": "success", "B": "pending"}), [asset], trade_nos=["A", "B"])
        hook = MerchantHook({"A": "success", "B": "failed"})
        _, events = run_with_outlets(hook, [asset], trade_nos=["A", "B"], only_non_terminal=only_non_terminal)
        # A settled in the earlier run: refetched or not, it is not announced again.
        assert sorted(hook.session.asked) == (["B"] if only_non_terminal else ["A", "B"])
        assert events[asset].extra["settled"] == [{"trade_no": "B", "state": "failed"}]

    def test_long_lists_are_cut_and_counted(self, warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(payout_status_module, "SETTLED_LIMIT", 3)
        asset = payouts_asset(MERCHANT)
        trade_nos = [f"T{n}" for n in range(10)]
        _, events = run_with_outlets(MerchantHook(), [asset], trade_nos=trade_nos, batch_size=4)
        extra = events[asset].extra
        assert [s["trade_no"] for s in extra["settled"]] == ["T0", "T1", "T2"]
        assert (extra["total"], extra["counts"], extra["truncated"]) == (10, {"success": 10}, True)

    def test_failed_lookups_and_unstorable_rows_are_not_announced(self, warehouse: Path) -> None:
        asset = payouts_asset(MERCHANT)
        answers = {"A": failure("A"), "B": "success"}
        _, events = run_with_outlets(MerchantHook(answers), [asset], trade_nos=["A", "B"], max_failed_ratio=1)
        assert events[asset].extra["settled"] == [{"trade_no": "B", "state": "success"}]

    def test_a_final_status_the_table_refused_is_not_announced(self, warehouse: Path) -> None:
        make(FakeHook(), trade_nos=["X"]).execute({})  # creates the table
        with sqlite3.connect(warehouse) as conn:
            conn.execute(
                "CREATE TRIGGER refuse_c BEFORE INSERT ON vexora_payout_status WHEN NEW.trade_no = 'C' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the table'); END"
            )
        asset = payouts_asset(MERCHANT)
        answers = {"A": "success", "C": "failed"}
        summary, events = run_with_outlets(
            MerchantHook(answers), [asset], trade_nos=["A", "C"], max_failed_ratio=1
        )
        assert (summary["loaded"], summary["unstorable"], summary["failed_sample"]) == (1, 1, ["C"])
        assert events[asset].extra["settled"] == [{"trade_no": "A", "state": "success"}]

    def test_other_outlets_are_left_alone(self, warehouse: Path) -> None:
        other = Asset(name="report", uri="s3://bucket/report")
        _, events = run_with_outlets(FakeHook(), [other], trade_nos=["A"])
        assert events[other].extra == {}

    def test_another_merchants_asset_is_refused_before_any_work(self, warehouse: Path) -> None:
        hook = MerchantHook()
        with pytest.raises(AirflowException, match="another merchant's payouts asset"):
            run_with_outlets(hook, [payouts_asset("9999999999")], trade_nos=["A"])
        assert hook.session.asked == []
