from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest

from tests.unit.vexora_provider.operators._fakes import MERCHANT, FakeHook, failure
from vexora_provider.operators._sync import FAILED_SAMPLE_SIZE, WarehouseSync
from vexora_provider.warehouse import BatchOutcome, Reversal, WarehouseError, error_row


class StubWriter:
    """A writer that records batches; ``gate`` (if set) holds the first write until released."""

    dialect = "stub"

    def __init__(self, gate: threading.Event | None = None, fail_on: int | None = None) -> None:
        self.gate, self.fail_on = gate, fail_on
        self.batches: list[tuple[int, int]] = []
        self.writing = threading.Event()
        self.closed = False
        self.created: bool | None = None
        self.conflict_retries = 0

    def prepare_tables(self, *, create: bool) -> None:
        self.created = create

    def first_column(self, sql: str) -> list[str]:
        return ["Q1", "Q2"]

    def terminal_trade_nos(self, merchant_no: str, trade_nos: list[str]) -> set[str]:
        return {t for t in trade_nos if t.startswith("DONE")}

    def adapt_status(self, row: Any) -> Any:
        return row

    def adapt_error(self, row: Any) -> Any:
        return row

    def write_batch(self, statuses: list[Any], errors: list[Any], *, batch: int) -> BatchOutcome:
        self.writing.set()
        if self.gate is not None:
            self.gate.wait(30)
        if batch == self.fail_on:
            raise WarehouseError("writing batch failed")
        self.batches.append((len(statuses), len(errors)))
        return BatchOutcome(
            loaded=len(statuses),
            by_state=Counter(row.state for row in statuses),
            errors=list(errors),
        )

    def close(self) -> None:
        self.closed = True


def sync(hook: FakeHook, writer: StubWriter, **kwargs: Any) -> WarehouseSync:
    options: dict[str, Any] = {
        "batch_size": 10,
        "concurrency": 4,
        "only_non_terminal": True,
        "create_table": True,
        "progress_interval": 30.0,
        "log": mock.Mock(),
    }
    options.update(kwargs)
    return WarehouseSync(hook=hook, writer=writer, **options)  # type: ignore[arg-type]


class TestWarehouseSync:
    def test_batches_counters_and_progress_lines(self) -> None:
        answers: dict[str, Any] = {f"F{i}": failure(f"F{i}") for i in range(15)}
        hook, writer = FakeHook(answers), StubWriter()
        trades = [f"T{i}" for i in range(25)] + list(answers) + ["DONE1", "DONE2"]
        log = mock.Mock()
        counters = sync(hook, writer, log=log).run(trade_nos=trades, trade_nos_sql=None)
        assert (counters.total, counters.skipped, counters.requested) == (42, 2, 40)
        assert (counters.loaded, counters.failed, counters.batches) == (25, 15, 4)
        assert sum(s + e for s, e in writer.batches) == 40
        assert len(counters.failed_sample) == FAILED_SAMPLE_SIZE
        assert counters.by_state == {"success": 25}
        assert writer.closed
        lines = [c.args for c in log.info.call_args_list]
        progress = [a for a in lines if a[1] == "Vexora sync progress"]
        assert len(progress) == 4  # one per committed batch
        final = next(a for a in lines if a[1] == "Vexora sync finished")
        assert final[2:] == (42, 42, mock.ANY, 25, 4, 15, 2, 0, 0)  # mock.ANY: the rate

    def test_sql_input(self) -> None:
        hook, writer = FakeHook(), StubWriter()
        counters = sync(hook, writer).run(trade_nos=None, trade_nos_sql="select")
        assert hook.session.asked == ["Q1", "Q2"]
        assert counters.loaded == 2

    def test_at_most_two_batches_in_memory(self) -> None:
        gate = threading.Event()
        hook, writer = FakeHook(), StubWriter(gate=gate)
        trades = [f"T{i}" for i in range(200)]
        result: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: result.update(c=sync(hook, writer).run(trade_nos=trades, trade_nos_sql=None))
        )
        worker.start()
        assert writer.writing.wait(30)
        time.sleep(0.3)  # give the fetch loop every chance to run ahead while batch 1 is held
        pulled = len(hook.session.asked)
        gate.set()
        worker.join(30)
        # Batch 1 is being written, batch 2 has filled; nothing more is fetched until batch 1 ends.
        assert pulled <= 2 * 10 + 1
        assert result["c"].loaded == 200

    def test_database_error_propagates_and_closes(self) -> None:
        writer = StubWriter(fail_on=2)
        with pytest.raises(WarehouseError):
            sync(FakeHook(), writer).run(trade_nos=[f"T{i}" for i in range(50)], trade_nos_sql=None)
        assert writer.closed
        assert writer.batches == [(10, 0)]

    def test_outcomes_of_the_writer_are_counted_and_reversals_logged(self) -> None:
        class Outcomes(StubWriter):
            def write_batch(self, statuses: list[Any], errors: list[Any], *, batch: int) -> BatchOutcome:
                super().write_batch(statuses, errors, batch=batch)
                return BatchOutcome(
                    loaded=len(statuses) - 1,
                    by_state=Counter({"success": len(statuses) - 1}),
                    errors=[
                        error_row(
                            MERCHANT, "T0", error_type="X", error="x", attempts=1, failed_at=datetime.now(UTC)
                        )
                    ],
                    superseded=2,
                    refused=["T0"],
                    reversals=[Reversal("T1", "success", "failed")],
                )

        log = mock.Mock()
        writer = Outcomes()
        counters = sync(FakeHook(), writer, log=log).run(trade_nos=["T0", "T1", "T2"], trade_nos_sql=None)
        assert (counters.loaded, counters.failed, counters.superseded) == (2, 1, 2)
        assert (counters.unstorable, counters.reversals) == (1, 1)
        assert writer.created is True
        log.warning.assert_called_once_with(mock.ANY, "T1", "success", "failed")
