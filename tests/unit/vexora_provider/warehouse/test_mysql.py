from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from unittest import mock

import pytest

from tests.unit.vexora_provider.warehouse.support import NOW, rows_for
from vexora_provider.warehouse import MySqlWriter, Reversal, TableName, UnstorableValueError


class TestMySqlWriter:
    def test_conditional_assignments_with_the_rule_columns_last(self) -> None:
        cur = mock.MagicMock()
        cur.fetchone.return_value = (None,)  # no reversal noted
        writer = MySqlWriter(mock.Mock(), TableName.parse("db.t"))
        assert writer._upsert_statuses(cur, rows_for(2)) == []
        sql = cur.executemany.call_args_list[0].args[0]
        assert sql.startswith("INSERT INTO `db`.`t` (`merchant_no`")
        assert (
            "ON DUPLICATE KEY UPDATE `platform_trade_no` = IF((((CASE VALUES(`state`) WHEN 'failed' THEN 1"
            in sql
        )
        assert sql.index("`raw` = IF(") < sql.index("`fetched_at` = IF(") < sql.index("`state` = IF(")
        assert "%" not in sql.split("ON DUPLICATE KEY UPDATE")[1]  # nothing the driver would format
        assert [c.args[0] for c in cur.execute.call_args_list] == [
            "SET @vexora_reversals = NULL",
            "SELECT @vexora_reversals",
        ]

    def test_reversals_noted_by_the_server_or_read_where_it_cannot(self) -> None:
        cur = mock.MagicMock()
        cur.fetchone.return_value = (b'["R1", "success", "failed"]\x1e["R2", "partial", "failed"]',)
        writer = MySqlWriter(mock.Mock(), TableName.parse("t"))
        assert writer._upsert_statuses(cur, rows_for(2)) == [
            Reversal("R1", "success", "failed"),
            Reversal("R2", "partial", "failed"),
        ]
        writer._collects_reversals = False
        cur.reset_mock()
        cur.fetchall.return_value = []
        assert writer._upsert_statuses(cur, rows_for(2, "failed")) == []
        assert "IN ('partial', 'success')" in cur.execute.call_args.args[0]  # other final states only
        assert "@vexora" not in cur.executemany.call_args.args[0]

    def test_ddl(self) -> None:
        ddl = MySqlWriter(mock.Mock(), TableName.parse("t")).ddl()[0]
        assert "ENGINE=InnoDB" in ddl
        assert "`amount` DECIMAL(65,30)" in ddl
        assert "`trade_no` VARCHAR(255) COLLATE utf8mb4_bin NOT NULL" in ddl

    def test_values_converted(self) -> None:
        writer = MySqlWriter(mock.Mock(), TableName.parse("t"))
        aware = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=7)))
        row = writer.adapt_status(rows_for(1)[0]._replace(success_time=aware, amount=Decimal("1E-8")))
        assert row.success_time == datetime(2026, 1, 1, 5)
        assert row.fetched_at == datetime(2026, 3, 1, 12)
        assert row.amount == "0.00000001"  # text MySQL converts to DECIMAL exactly

    def test_times_outside_datetime_refused(self) -> None:
        writer = MySqlWriter(mock.Mock(), TableName.parse("t"))
        early = datetime(999, 12, 31, 23, tzinfo=UTC)
        with pytest.raises(
            UnstorableValueError, match=r"success_time: 0999-12-31 23:00:00 UTC is outside DATETIME's range"
        ):
            writer.adapt_status(rows_for(1)[0]._replace(success_time=early))
        assert NOW  # the fetch time itself is always in range
