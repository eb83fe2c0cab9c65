from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.unit.vexora_provider.operators._fakes import MERCHANT, status
from tests.unit.vexora_provider.warehouse.support import NOW, rows_for, sqlite_writer
from vexora_provider.warehouse import Reversal, status_row


class TestSqliteWriter:
    def test_upsert_is_idempotent_and_exact(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        writer.create_tables()  # IF NOT EXISTS
        latest = writer.adapt_status(status_row(MERCHANT, status("T000001", "failed", "0.1"), NOW))
        batch = [*rows_for(50, writer=writer), latest]
        writer.write_batch(batch, [], batch=1)
        first = writer.conn.execute("SELECT * FROM st ORDER BY trade_no").fetchall()
        writer.write_batch(batch, [], batch=2)
        assert writer.conn.execute("SELECT * FROM st ORDER BY trade_no").fetchall() == first
        assert len(first) == 50
        dup = next(r for r in first if r[1] == "T000001")
        assert (dup[4], Decimal(dup[6])) == (
            "failed",
            Decimal("0.1"),
        )  # same class, same fetch: the later row wins
        writer.close()

    def test_amounts_stored_as_the_gateway_wrote_them(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        amounts = ["300.00", "0.00004999", "99.99999", "1E+400", "-0.10"]
        rows = [
            writer.adapt_status(status_row(MERCHANT, status(f"A{i}", amount=a), NOW))
            for i, a in enumerate(amounts)
        ]
        writer.write_batch(rows, [], batch=1)
        assert [r[0] for r in writer.conn.execute("SELECT amount FROM st ORDER BY trade_no")] == amounts

    def test_times_as_sortable_utc_text(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        row = writer.adapt_status(status_row(MERCHANT, status("A"), NOW))
        assert (row.success_time, row.fetched_at) == (
            "2026-01-02 09:00:00.000000+00:00",
            "2026-03-01 12:00:00.000000+00:00",
        )

    def test_reversals_reported_by_the_database_itself(self, tmp_path: Path) -> None:
        writer = sqlite_writer(tmp_path / "w.db")
        writer.write_batch(rows_for(3, "success", writer=writer), [], batch=1)
        later = NOW.replace(hour=13)
        outcome = writer.write_batch(
            rows_for(1, "failed", 0, writer, later) + rows_for(1, "partial", 1, writer, NOW.replace(hour=11)),
            [],
            batch=2,
        )
        assert outcome.reversals == [Reversal("T000000", "success", "failed")]
        states = writer.conn.execute("SELECT trade_no, state FROM st ORDER BY 1").fetchall()
        assert states == [("T000000", "failed"), ("T000001", "success"), ("T000002", "success")]
