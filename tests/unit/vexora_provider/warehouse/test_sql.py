from __future__ import annotations

import itertools
import sqlite3

import pytest

from vexora_provider.warehouse.rows import supersedes
from vexora_provider.warehouse.sql import (
    by_merchant,
    chunks,
    superseded_error_sql,
    supersedes_sql,
    update_set,
)

STATES = ["success", "partial", "failed", "pending", "unknown", None]
TIMES = ["2026-01-01 00:00:01", "2026-01-01 00:00:02"]


class TestRuleAsSql:
    @pytest.mark.parametrize(
        ("new_state", "new_time", "old_state", "old_time"),
        list(itertools.product(STATES[:5], TIMES, STATES, TIMES)),
    )
    def test_same_answer_as_python(
        self, new_state: str, new_time: str, old_state: str | None, old_time: str
    ) -> None:
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (ns, nt, os, ot)")
        conn.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (new_state, new_time, old_state, old_time))
        (result,) = conn.execute(f"SELECT {supersedes_sql('ns', 'nt', 'os', 'ot')} FROM t").fetchone()
        assert bool(result) is supersedes(new_state, new_time, old_state, old_time)

    @pytest.mark.parametrize(
        ("state", "fetched", "failed", "obsolete"),
        [
            ("success", TIMES[0], TIMES[1], True),
            ("pending", TIMES[1], TIMES[0], True),
            ("pending", TIMES[1], TIMES[1], True),
            ("pending", TIMES[0], TIMES[1], False),
        ],
    )
    def test_obsolete_error(self, state: str, fetched: str, failed: str, obsolete: bool) -> None:
        sql = superseded_error_sql("'" + state + "'", "'" + fetched + "'", "'" + failed + "'")
        assert bool(sqlite3.connect(":memory:").execute(f"SELECT {sql}").fetchone()[0]) is obsolete


class TestPieces:
    def test_update_set_assigns_the_named_columns_last(self) -> None:
        columns = ("merchant_no", "trade_no", "a", "state", "b", "fetched_at")
        assert update_set(columns, "`", "V({col})", last=("fetched_at", "state")) == (
            "`a` = V(`a`), `b` = V(`b`), `fetched_at` = V(`fetched_at`), `state` = V(`state`)"
        )

    def test_chunks_and_grouping(self) -> None:
        assert [list(c) for c in chunks(list(range(5)), 2)] == [[0, 1], [2, 3], [4]]
        assert by_merchant([("m1", "a"), ("m2", "b"), ("m1", "c")]) == {"m1": ["a", "c"], "m2": ["b"]}
