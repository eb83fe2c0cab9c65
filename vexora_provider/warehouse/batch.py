"""One batch, one transaction: statuses upserted under the ordering rule, error rows kept truthful.

In each batch transaction, in key order:

1. the status rows are upserted; the database keeps, per trade, the answer
   :func:`~vexora_provider.warehouse.rows.supersedes` prefers (final beats non-final, then the
   later fetch), and reports final states replaced by different final states;
2. error rows of those trades that the table's status now makes obsolete (a final status, or
   one fetched at or after the failure) are deleted;
3. the batch's failures are recorded, except where the table already holds a final status or
   a newer fetch: an error row is never written beside a final status.

After the commit, a second short transaction deletes obsolete error rows of the batch's trades
again: a failure another writer recorded while this batch's status was not yet committed would
otherwise stay (of two such writers, the one that sweeps last sees both commits).

A batch the database refuses for a data reason is split in halves, recursively, so only the
rows it refuses are lost to the errors table (``UnstorableValue``); conflicts (deadlocks, lock
timeouts, busy) are retried as a whole by :meth:`~.base.WriterBase._run`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vexora_provider.warehouse.base import WarehouseDataError, WarehouseError, WriterBase
from vexora_provider.warehouse.rows import (
    ErrorRow,
    Reversal,
    StatusRow,
    error_row,
    is_final,
    latest_errors,
    winning_statuses,
)
from vexora_provider.warehouse.sql import FINAL_LIST, Key, superseded_error_sql
from vexora_provider.warehouse.values import instant

__all__ = ["BatchOutcome", "WarehouseWriter"]


@dataclass
class BatchOutcome:
    """
    What one batch did, once committed.

    :param loaded: status rows written (the table keeps the newer of these and what it held).
    :param by_state: loaded rows per state.
    :param errors: the error rows recorded (each failed trade, with its cause).
    :param superseded: failures not recorded: the table holds a final status or a newer fetch.
    :param refused: trade numbers whose status row the database refused (recorded as failures
        instead, or superseded).
    :param reversals: final states replaced by a different final state.
    :param refusal: the database's reason for the first row it refused.
    """

    loaded: int = 0
    by_state: Counter[str] = field(default_factory=Counter)
    errors: list[ErrorRow] = field(default_factory=list)
    superseded: int = 0
    refused: list[str] = field(default_factory=list)
    reversals: list[Reversal] = field(default_factory=list)
    refusal: str = ""

    @property
    def failed(self) -> list[str]:
        """The trade numbers recorded in the errors table."""
        return [e.trade_no for e in self.errors]

    @property
    def unstorable(self) -> int:
        """Status rows the database refused."""
        return len(self.refused)


class WarehouseWriter(WriterBase, ABC):
    """
    Writes batches of status and error rows to one table (see the module docs for the steps).

    :param hook: any common-sql :class:`DbApiHook`.
    :param table: the validated status table; errors go to ``<table>_errors``.
    """

    #: Sweep obsolete error rows after each commit (not needed where writers are serialised).
    sweeps_errors: ClassVar[bool] = True
    #: Look whether the errors table holds any row before deleting by key (``LIMIT`` is not
    #: portable SQL, so only the dialects that have it look); usually it holds none.
    probes_errors: ClassVar[bool] = False

    # -- the dialect's statements ----------------------------------------------------------------
    @abstractmethod
    def _upsert_statuses(self, cur: Any, rows: list[StatusRow]) -> list[Reversal]:
        """Upsert ``rows`` (one per key, key order) under the ordering rule; return the reversals."""

    @abstractmethod
    def _insert_errors(self, cur: Any, rows: list[ErrorRow]) -> None:
        """Record failures (later failure wins) unless a final or newer status exists meanwhile."""

    def _errors_exist(self, cur: Any) -> bool:
        """Whether the errors table may hold rows (a cheap look lets some dialects skip deletes)."""
        if not self.probes_errors:
            return True
        cur.execute(f"SELECT 1 FROM {self.errors_sql} LIMIT 1")
        return bool(cur.fetchall())

    def _clear_errors(self, cur: Any, keys: Sequence[Key]) -> None:
        """Delete error rows of ``keys`` that the status table makes obsolete."""
        e, q = self.errors_sql, self.quote
        obsolete = superseded_error_sql(
            self._col("state", "c."), self._col("fetched_at", "c."), f"{e}.{q}failed_at{q}"
        )
        same_key = f"c.{q}merchant_no{q} = {e}.{q}merchant_no{q} AND c.{q}trade_no{q} = {e}.{q}trade_no{q}"
        tail = f" AND EXISTS (SELECT 1 FROM {self.status_sql} c WHERE {same_key} AND {obsolete})"
        self._keyed(cur, f"DELETE FROM {e}", keys, tail=tail)

    def _stored_statuses(self, cur: Any, keys: Sequence[Key]) -> dict[Key, tuple[Any, Any]]:
        """``key -> (state, fetched_at)`` of the stored statuses of ``keys``."""
        columns = self._columns(["merchant_no", "trade_no", "state", "fetched_at"])
        found = self._keyed(cur, f"SELECT {columns} FROM {self.status_sql}", keys, fetch=True)
        return {(m, t): (state, fetched_at) for m, t, state, fetched_at in found}

    # -- reads -----------------------------------------------------------------------------------
    def terminal_trade_nos(self, merchant_no: str, trade_nos: Sequence[object]) -> set[str]:
        """
        Return which of ``trade_nos`` the table holds in a final state; clear their error rows.

        A trade number that cannot be a key here (not text, NUL on PostgreSQL, …) cannot be in
        the table and is not looked up. Error rows beside a final status are obsolete whatever
        wrote them (a run killed before its sweep, say), so they go in the same transaction.
        """
        wanted = dict.fromkeys(t for t in trade_nos if isinstance(t, str) and self.storable_key(t))
        keys = [(merchant_no, t) for t in wanted]

        def work(cur: Any) -> set[str]:
            head = f"SELECT {self._col('trade_no')} FROM {self.status_sql}"
            found = {
                str(r[0])
                for r in self._keyed(cur, head, keys, tail=f" AND {self._final_state()}", fetch=True)
            }
            if found and self._errors_exist(cur):
                self._keyed(cur, f"DELETE FROM {self.errors_sql}", [(merchant_no, t) for t in sorted(found)])
            return found

        return self._run("reading terminal trades", work)

    def non_final_trade_nos(self, merchant_no: str) -> list[str]:
        """Return the merchant's trade numbers the table holds in a state that is not final."""
        state = self._col("state")
        sql = (
            f"SELECT {self._col('trade_no')} FROM {self.status_sql} "
            f"WHERE {self._col('merchant_no')} = {self.placeholder} "
            f"AND ({state} IS NULL OR NOT {self._final_state()})"
        )

        def work(cur: Any) -> list[str]:
            cur.execute(sql, (merchant_no,))
            return [str(row[0]) for row in cur.fetchall()]

        return self._run("reading non-final trades", work)

    def _final_state(self, alias: str = "") -> str:
        return f"{self._col('state', alias)} IN ({FINAL_LIST})"

    # -- writes ----------------------------------------------------------------------------------
    def write_batch(self, statuses: list[StatusRow], errors: list[ErrorRow], *, batch: int) -> BatchOutcome:
        """
        Write a batch; rows must come from :meth:`adapt_status`/:meth:`adapt_error`.

        Rows are converted as they arrive (on the fetch side), so a batch only costs SQL here.

        :raises WarehouseError: the database failed for another reason than one row's data, or
            refused every row of the batch (then the table, not the data, is the likely cause).
        """
        rows, failed = winning_statuses(statuses), latest_errors(errors)
        outcome = BatchOutcome()
        self._write_parts(rows, failed, batch, outcome)
        if outcome.unstorable and outcome.unstorable == len(rows) > 1:
            raise WarehouseError(
                f"writing batch {batch} on {self.table} ({self.dialect}): the database refused every "
                f"row ({outcome.refusal}); check the table's column types",
                reason=outcome.refusal,
            )
        if self.sweeps_errors:
            keys = sorted(
                {(r.merchant_no, r.trade_no) for r in rows} | {(e.merchant_no, e.trade_no) for e in failed}
            )
            self._run(f"clearing obsolete error rows of batch {batch}", lambda cur: self._sweep(cur, keys))
        return outcome

    def _sweep(self, cur: Any, keys: Sequence[Key]) -> None:
        if self._errors_exist(cur):
            self._clear_errors(cur, keys)

    def _write_parts(
        self, rows: list[StatusRow], errors: list[ErrorRow], batch: int, outcome: BatchOutcome
    ) -> None:
        what = f"writing batch {batch} ({len(rows)} rows, {len(errors)} errors)"
        try:
            reversals, superseded = self._run(what, lambda cur: self._transaction(cur, rows, errors))
        except WarehouseDataError as exc:
            items: list[StatusRow | ErrorRow] = [*rows, *errors]
            if len(items) > 1:
                middle = len(items) // 2
                for part in (items[:middle], items[middle:]):
                    self._write_parts(
                        [r for r in part if isinstance(r, StatusRow)],
                        [e for e in part if isinstance(e, ErrorRow)],
                        batch,
                        outcome,
                    )
                return
            if not rows:
                raise  # one of our own error rows refused: the errors table is wrong, not a trade
            row = rows[0]
            outcome.refused.append(row.trade_no)
            outcome.refusal = outcome.refusal or exc.reason
            failure = error_row(
                row.merchant_no,
                row.trade_no,
                error_type="UnstorableValue",
                error=f"the database refused the row: {exc.reason}",
                attempts=1,
                failed_at=instant(row.fetched_at),
            )
            self._write_parts([], [self.adapt_error(failure)], batch, outcome)
            return
        outcome.loaded += len(rows)
        outcome.by_state.update(row.state for row in rows)
        outcome.errors.extend(e for e in errors if (e.merchant_no, e.trade_no) not in superseded)
        outcome.superseded += len(superseded)
        outcome.reversals.extend(reversals)

    def _transaction(
        self, cur: Any, rows: list[StatusRow], errors: list[ErrorRow]
    ) -> tuple[list[Reversal], set[Key]]:
        reversals = self._upsert_statuses(cur, rows) if rows else []
        if rows and self._errors_exist(cur):
            self._clear_errors(cur, [(r.merchant_no, r.trade_no) for r in rows])
        superseded: set[Key] = set()
        if errors:
            stored = self._stored_statuses(cur, [(e.merchant_no, e.trade_no) for e in errors])
            for error in errors:
                key = (error.merchant_no, error.trade_no)
                status = stored.get(key)
                if status is not None and (
                    is_final(status[0]) or instant(status[1]) >= instant(error.failed_at)
                ):
                    superseded.add(key)
            kept = [e for e in errors if (e.merchant_no, e.trade_no) not in superseded]
            if kept:
                self._insert_errors(cur, kept)
        return reversals, superseded
