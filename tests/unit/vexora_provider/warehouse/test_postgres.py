from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest

from tests.unit.vexora_provider.operators._fakes import MERCHANT
from tests.unit.vexora_provider.warehouse.support import NOW, rows_for
from vexora_provider.warehouse import PostgresWriter, Reversal, TableName, error_row


class TestPostgresWriter:
    def test_copy_into_stage_then_one_conditional_upsert_in_key_order(self) -> None:
        cur = mock.MagicMock()
        writer = PostgresWriter(mock.Mock(), TableName.parse("s.t"))
        writer._upsert_statuses(cur, rows_for(3000))
        statements = [c.args[0].split()[0] for c in cur.execute.call_args_list]
        # The first batch also creates the session's reversal function and reads the stage's types.
        assert statements == ["CREATE", "CREATE", "SELECT", "INSERT"]
        cur.execute.reset_mock()
        writer._upsert_statuses(cur, rows_for(10))
        assert [c.args[0].split()[0] for c in cur.execute.call_args_list] == ["CREATE", "INSERT"]
        assert cur.copy.call_args_list[0].args[0].startswith("COPY _vexora_stage (")
        assert not cur.copy.call_args.args[0].endswith("(FORMAT BINARY)")  # mock description: not ours
        upsert = cur.execute.call_args_list[1].args[0]
        assert 'INSERT INTO "s"."t" AS cur' in upsert
        assert 'ORDER BY "merchant_no" COLLATE "C", "trade_no" COLLATE "C"' in upsert
        assert 'ON CONFLICT ("merchant_no", "trade_no") DO UPDATE' in upsert
        assert (
            """WHERE CASE WHEN (((CASE EXCLUDED."state" WHEN 'failed' THEN 1""" in upsert
        )  # the rule, in SQL
        assert cur.copy.return_value.__enter__.return_value.write_row.call_count == 3010

    def test_the_reversal_function_is_made_again_after_a_rollback(self) -> None:
        writer = PostgresWriter(mock.Mock(), TableName.parse("t"))
        writer._upsert_statuses(mock.MagicMock(), rows_for(1))
        assert writer._function_ready
        writer._after_rollback()
        assert not writer._function_ready

    @pytest.mark.parametrize(
        "notice",
        [
            '["vexora_reversal", "R1", "success", "failed"]',  # psycopg 3: the primary message
            'NOTICE:  ["vexora_reversal", "R1", "success", "failed"]\n',  # psycopg2: the line
        ],
    )
    def test_reversal_notices_collected(self, notice: str) -> None:
        writer = PostgresWriter(mock.Mock(), TableName.parse("t"))
        writer._on_notice('relation "_vexora_stage" already exists, skipping')
        writer._on_notice(notice)
        assert writer._reversals == [Reversal("R1", "success", "failed")]

    def test_errors_recorded_only_without_a_final_or_newer_status(self) -> None:
        cur = mock.MagicMock()
        writer = PostgresWriter(mock.Mock(), TableName.parse("t"))
        err = error_row(MERCHANT, "E1", error_type="E", error="x", attempts=1, failed_at=NOW)
        writer._insert_errors(cur, [err, err])
        sql, params = cur.execute.call_args.args
        assert 'WHERE NOT EXISTS (SELECT 1 FROM "t" c' in sql
        assert 'WHERE EXCLUDED."failed_at" >= cur."failed_at"' in sql
        assert len(params) == 12

    def test_psycopg2_copy_expert_csv(self) -> None:
        cur = mock.Mock(spec=["execute", "copy_expert"])
        writer = PostgresWriter(mock.Mock(), TableName.parse("t"))
        writer._copy(cur, "COPY x FROM STDIN", [("a", None, "", Decimal("1E-8"), NOW)])  # type: ignore[list-item]
        statement, buffer = cur.copy_expert.call_args.args
        assert statement.endswith("WITH (FORMAT csv)")
        assert buffer.getvalue() == '"a",,"","0.00000001","2026-03-01T12:00:00+00:00"\n'

    def test_unconstrained_numeric_and_timestamptz(self) -> None:
        ddl = PostgresWriter(mock.Mock(), TableName.parse("t")).ddl()[0]
        assert '"amount" NUMERIC,' in ddl
        assert '"success_time" TIMESTAMPTZ' in ddl

    def test_table_creation_is_serialised_and_old_tables_widened(self) -> None:
        cur = mock.MagicMock()
        cur.fetchall.return_value = [("amount", "numeric", 20, 4), ("order_amount", "numeric", None, None)]
        writer = PostgresWriter(mock.Mock(), TableName.parse("t"))
        with writer._ddl_lock(cur):
            writer._migrate(cur)
        sql = [c.args[0] for c in cur.execute.call_args_list]
        assert sql[0] == "SELECT pg_advisory_xact_lock(hashtext(%s))"
        assert sql[-1] == 'ALTER TABLE "t" ALTER COLUMN "amount" TYPE NUMERIC'
