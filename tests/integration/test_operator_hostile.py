"""Hostile answers and inputs, each mixed into a batch of good ones, on every real warehouse.

Every trade ends loaded or in the errors table, the good rows are exactly what a clean run
stores, and nothing else fails: one bad trade costs one trade.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.integration.operator_support import (
    Warehouse,
    run_sync,
    simulator,
    unique_table,
    vexora_connection,
)
from vexora_provider.testing.faults import FaultRule

pytestmark = pytest.mark.integration

LOADED = "loaded"
FORMAT = "VexoraResponseFormatError"
UNSTORABLE = "UnstorableValue"

# (hostile answer, its options, outcome per warehouse ("*": any other)): "loaded", or the error
# row's type and a piece of its message.
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("surrogate_message", {}, {"*": (UNSTORABLE, "message: contains a lone surrogate (U+D800)")}),
    ("nul_message", {}, {"postgres": (UNSTORABLE, "message: contains NUL"), "*": LOADED}),
    ("nul_status", {}, {"postgres": (UNSTORABLE, "status_code: contains NUL"), "*": LOADED}),
    ("nul_platform_trade_no", {}, {"postgres": (UNSTORABLE, "platform_trade_no: contains NUL"), "*": LOADED}),
    ("deep_nesting", {}, {"*": LOADED}),
    ("deep_nesting", {"depth": 5000}, {"*": (FORMAT, "body is not JSON")}),
    ("time_min", {}, {"*": (FORMAT, "outside the years 1-9999 in UTC")}),
    ("time_max", {}, {"*": LOADED}),
    ("odd_amount", {"amount": '"0.00004999"'}, {"*": LOADED}),
    ("odd_amount", {"amount": "99.99999"}, {"*": LOADED}),
    ("odd_amount", {"amount": '"1_000"'}, {"*": (FORMAT, "amount is not an amount")}),
    ("odd_amount", {"amount": '"١٢٣"'}, {"*": (FORMAT, "amount is not an amount")}),
    ("odd_amount", {"amount": '"NaN"'}, {"*": (FORMAT, "amount is not an amount")}),
    (
        "odd_amount",
        {"amount": "1E+400"},
        {"mariadb": (UNSTORABLE, "amount: amount 1E+400 not representable in DECIMAL(65,30)"), "*": LOADED},
    ),
]


def _expected(case: dict[str, Any], dialect: str) -> Any:
    return case.get(dialect, case["*"])


class TestHostileAnswers:
    def test_each_costs_at_most_its_own_trade(self, warehouse: Warehouse) -> None:
        table, clean = unique_table("hostile"), unique_table("clean")
        sim, trades = simulator(60, seed=17)
        hostile = dict(zip(trades[::4], CASES, strict=False))  # spread over three batches
        for trade_no, (kind, options, _) in hostile.items():
            sim.add_fault(FaultRule(kind, "queryPayOutResult", trade_no=trade_no, **options))
        try:
            with vexora_connection(sim, max_attempts=1) as vexora:
                summary = run_sync(
                    vexora, warehouse.conn_id, table, trades, batch_size=20, max_failed_ratio=1
                )
                sim.clear_faults()
                run_sync(vexora, warehouse.conn_id, clean, trades, batch_size=20)
            errors = {
                t: (kind, message)
                for t, kind, message in warehouse.select(
                    f"SELECT trade_no, error_type, error FROM {warehouse.q(table + '_errors')}"
                )
            }
            loaded = {row[1]: row for row in warehouse.rows(table)}
            assert set(loaded) | set(errors) == set(trades)
            assert not set(loaded) & set(errors)
            for trade_no, (kind, _, outcome) in hostile.items():
                expected = _expected(outcome, warehouse.dialect)
                if expected == LOADED:
                    assert trade_no in loaded, (kind, errors.get(trade_no))
                else:
                    error_type, text = expected
                    assert errors[trade_no][0] == error_type, kind
                    assert text in errors[trade_no][1], (kind, errors[trade_no])
            good = {row[1]: row for row in warehouse.rows(clean) if row[1] not in hostile}
            assert {t: loaded[t] for t in good} == good
            assert summary["failed"] == len(errors)
            assert summary["loaded"] == len(loaded)
            assert summary["requested"] == len(trades)

            by_kind = {hostile[t][0] + str(hostile[t][1]): loaded[t] for t in hostile if t in loaded}
            amounts = {k: row[6] for k, row in by_kind.items() if k.startswith("odd_amount")}
            assert amounts["odd_amount{'amount': '\"0.00004999\"'}"] == Decimal("0.00004999")
            assert amounts["odd_amount{'amount': '99.99999'}"] == Decimal("99.99999")
            assert str(by_kind["time_max{}"][9]) == "9999-12-31 22:59:59+00:00"
        finally:
            warehouse.drop(table)
            warehouse.drop(clean)

    def test_a_time_past_year_9999_in_utc_is_recorded(self, warehouse: Warehouse) -> None:
        table = unique_table("tmax")
        sim, trades = simulator(6)
        sim.add_fault(FaultRule("time_max", "queryPayOutResult", trade_no=trades[2]))
        try:
            with vexora_connection(sim, timezone="America/Bogota") as vexora:  # UTC-5
                summary = run_sync(vexora, warehouse.conn_id, table, trades, max_failed_ratio=1)
            assert (summary["loaded"], summary["failed"]) == (5, 1)
            errors = warehouse.select(f"SELECT trade_no, error FROM {warehouse.q(table + '_errors')}")
            message = "successTime '9999-12-31 23:59:59' in America/Bogota is outside the years 1-9999 in UTC"
            assert errors == [(trades[2], f"trade '{trades[2]}': malformed response: {message}")]
        finally:
            warehouse.drop(table)


class TestHostileTradeNumbers:
    def test_recorded_escaped_and_the_rest_loads(self, warehouse: Warehouse) -> None:
        table = unique_table("badno")
        sim, trades = simulator(10)
        hostile = {"BAD\x00NO": "BAD\\x00NO", "X\ud800": "X\\ud800", " ": " ", "TAB\tNO": "TAB\\tNO"}
        too_long = "L" * 300
        try:
            with vexora_connection(sim) as vexora:
                for _ in range(2):  # the second run looks the inputs up among terminal trades
                    summary = run_sync(
                        vexora,
                        warehouse.conn_id,
                        table,
                        [*trades, *hostile, too_long],
                        max_failed_ratio=1,
                    )
                    assert summary["failed"] == len(hostile) + 1
            keys = {r[0] for r in warehouse.select(f"SELECT trade_no FROM {warehouse.q(table + '_errors')}")}
            (long_key,) = keys - set(hostile.values())
            assert keys - {long_key} == set(hostile.values())
            assert long_key.startswith("L" * 200)
            assert "[300 chars, sha256 " in long_key
            assert len(long_key) <= 255
            assert len(warehouse.rows(table)) == 10
        finally:
            warehouse.drop(table)
