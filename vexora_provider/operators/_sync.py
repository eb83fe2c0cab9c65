"""The fetch → batch → upsert pipeline behind :class:`PayoutStatusToSqlOperator`.

Fetching runs on an asyncio loop; every database call runs on one dedicated thread (SQLite
connections belong to the thread that opened them). While one batch is written, the next one fills,
so at most two batches of rows are in memory whatever the number of trades.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from vexora_provider._text import count
from vexora_provider.models import PayoutQueryError, PayoutStatus
from vexora_provider.operators._settled import SettledTrades
from vexora_provider.trade_nos import TradeNos, coerce_trade_nos
from vexora_provider.warehouse import (
    BatchOutcome,
    ErrorRow,
    StatusRow,
    UnstorableValueError,
    WarehouseWriter,
    error_row,
    query_error_row,
    status_row,
)

if TYPE_CHECKING:
    from vexora_provider.hooks.vexora import FetchStats, VexoraHook

__all__ = ["FAILED_SAMPLE_SIZE", "FAILURE_DETAIL_LIMIT", "FailedTrade", "SyncCounters", "WarehouseSync"]

FAILED_SAMPLE_SIZE = 10
#: Failed trades kept with their causes (for OpenLineage's error facet); all are counted.
FAILURE_DETAIL_LIMIT = 100
# fetched_at is read at most this often (seconds): one datetime shared by rows fetched together.
_CLOCK_TICK = 0.05

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class FailedTrade:
    """
    A trade recorded in the errors table, and why.

    :param trade_no: the trade number (as stored in the errors table).
    :param error_type: the error class, e.g. ``VexoraTransportError`` or ``UnstorableValue``.
    :param error: the error text recorded.
    """

    trade_no: str
    error_type: str
    error: str


@dataclass
class SyncCounters:
    """
    What one sync did; plain counters, so the summary stays small for any number of trades.

    :param total: entries taken from the input (repeats and entries that are not trade numbers
        included).
    :param duplicates: entries left out because they repeat an earlier trade number.
    :param skipped: trades skipped because the table already holds them in a terminal state.
    :param requested: trades sent to the gateway, and entries that are not trade numbers (every
        one ends loaded or failed).
    :param loaded: status rows upserted (the table keeps the newer of each and what it held).
    :param failed: trades recorded in the errors table (failed lookups, values the table cannot
        hold).
    :param superseded: failed lookups not recorded, because the table already holds a final
        status or a newer fetch of that trade (e.g. from a concurrent sync).
    :param unstorable: fetched statuses recorded as failed because the table cannot hold a value
        exactly (counted in ``failed`` too).
    :param reversals: final states replaced by a different final state (each logged as a warning).
    :param batches: batches committed.
    :param by_state: loaded rows per state.
    :param failures: the first ``FAILURE_DETAIL_LIMIT`` failed trades with their causes.
    :param started_at: ``time.monotonic()`` when the sync started.
    """

    total: int = 0
    duplicates: int = 0
    skipped: int = 0
    requested: int = 0
    loaded: int = 0
    failed: int = 0
    superseded: int = 0
    unstorable: int = 0
    reversals: int = 0
    batches: int = 0
    by_state: Counter[str] = field(default_factory=Counter)
    failures: list[FailedTrade] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)

    def note_failures(self, rows: Sequence[ErrorRow]) -> None:
        """Count recorded failures; keep the first ones with their causes (memory stays bounded)."""
        self.failed += len(rows)
        for row in islice(rows, max(0, FAILURE_DETAIL_LIMIT - len(self.failures))):
            self.failures.append(FailedTrade(row.trade_no, row.error_type, row.error))

    @property
    def failed_sample(self) -> list[str]:
        """The first few failed trade numbers (the full list is the errors table)."""
        return [f.trade_no for f in self.failures[:FAILED_SAMPLE_SIZE]]

    @property
    def elapsed(self) -> float:
        """Seconds since the sync started."""
        return time.monotonic() - self.started_at


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop (installed with uvicorn[standard]) cuts the loop's share of per-request CPU, which
    # is what separates the fetch from the N·L/C bound on a busy worker; asyncio's loop otherwise.
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class WarehouseSync:
    """
    Fetch statuses through a hook session and upsert them in batches through a writer.

    :param hook: the Vexora hook (connection, retries and rate limit live there).
    :param writer: the warehouse writer; used only from this object's database thread.
    :param batch_size: rows per upsert transaction.
    :param concurrency: requests in flight.
    :param only_non_terminal: skip trades the table already holds in a terminal state.
    :param create_table: create the tables when missing.
    :param progress_interval: seconds between progress lines while no batch completes.
    :param log: where progress goes.
    :param settled: when given, collects the trades that became final (for an outlet event).
    """

    def __init__(
        self,
        *,
        hook: VexoraHook,
        writer: WarehouseWriter,
        batch_size: int,
        concurrency: int,
        only_non_terminal: bool,
        create_table: bool,
        progress_interval: float,
        log: logging.Logger | Any,  # Airflow's task logger is a structlog logger
        settled: SettledTrades | None = None,
    ) -> None:
        self.hook = hook
        self.writer = writer
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.only_non_terminal = only_non_terminal
        self.create_table = create_table
        self.progress_interval = progress_interval
        self.log = log
        self.settled = settled
        self.counters = SyncCounters()
        self.stats: FetchStats | None = None
        self.expected: int | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vexora-warehouse")

    async def _on_db(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, lambda: func(*args, **kwargs))

    def run(self, *, trade_nos: object | None, trade_nos_sql: str | None) -> SyncCounters:
        """
        Run the whole sync and return its counters; database errors propagate.

        :raises TradeNosError: ``trade_nos`` is not trade numbers as a whole.
        """
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                return runner.run(self._run(trade_nos, trade_nos_sql))
        finally:
            self._db.submit(self.writer.close).result()
            self._db.shutdown()

    async def _run(self, trade_nos: object | None, trade_nos_sql: str | None) -> SyncCounters:
        given = None if trade_nos is None else coerce_trade_nos(trade_nos)  # refused before any SQL
        await self._on_db(self.writer.prepare_tables, create=self.create_table)
        if given is None:
            given = await self._query_trade_nos(trade_nos_sql or "")
        counters = self.counters
        counters.total += given.duplicates + len(given.invalid)
        counters.duplicates = given.duplicates
        if given.duplicates:
            self.log.info(
                "%s given more than once: each is fetched once", count(given.duplicates, "trade number")
            )
        source = given.trade_nos
        self.expected = len(source) + len(given.invalid)
        async with self.hook.async_session(concurrency=self.concurrency) as session:
            self.stats = session.stats
            merchant_no = session.config.merchant_no
            ticker = asyncio.create_task(self._tick())
            try:
                stream = session.stream_payout_statuses(
                    self._candidates(source, merchant_no), concurrency=self.concurrency
                )
                try:
                    await self._load(_invalid_first(given, stream) if given.invalid else stream, merchant_no)
                finally:
                    # Stop the fetch workers now, not when the loop shuts down, if loading failed.
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()
            finally:
                ticker.cancel()
        self.log_progress(final=True)
        return self.counters

    async def _query_trade_nos(self, sql: str) -> TradeNos:
        values = await self._on_db(self.writer.first_column, sql)
        nulls = sum(1 for v in values if v is None)
        self.log.info("trade_nos_sql returned %s", count(len(values), "row"))
        if nulls:
            self.log.warning("trade_nos_sql returned %s: not trade numbers, left out", count(nulls, "NULL"))
        return coerce_trade_nos([v for v in values if v is not None], param="trade_nos_sql")

    async def _candidates(self, trade_nos: Iterable[str], merchant_no: str) -> AsyncIterator[str]:
        # Terminal statuses never change: look them up chunk by chunk so memory stays bounded.
        for chunk in _chunked(trade_nos, self.batch_size):
            terminal: set[str] = set()
            if self.only_non_terminal or self.settled is not None:
                terminal = await self._on_db(self.writer.terminal_trade_nos, merchant_no, chunk)
            if not self.only_non_terminal:
                if self.settled is not None:  # refetched, but they did not become final now
                    self.settled.already_final.update(terminal)
                terminal = set()
            for trade_no in chunk:
                self.counters.total += 1
                if trade_no in terminal:
                    self.counters.skipped += 1
                    continue
                yield trade_no

    async def _load(self, stream: AsyncIterator[PayoutStatus | PayoutQueryError], merchant_no: str) -> None:
        statuses: list[StatusRow] = []
        errors: list[ErrorRow] = []
        settled: list[tuple[str, str]] = []
        unstorable = 0  # of this batch; counted on the database thread once committed
        pending: asyncio.Future[None] | None = None
        writer = self.writer
        now, now_at = datetime.now(UTC), time.monotonic()
        async for item in stream:
            self.counters.requested += 1
            if time.monotonic() - now_at > _CLOCK_TICK:
                now, now_at = datetime.now(UTC), time.monotonic()
            if isinstance(item, PayoutStatus):
                try:
                    statuses.append(writer.adapt_status(status_row(merchant_no, item, now)))
                except UnstorableValueError as exc:  # one trade's value: record it, never round it
                    unstorable += 1
                    error = error_row(
                        merchant_no,
                        item.trade_no,
                        error_type=exc.error_type,
                        error=str(exc),
                        attempts=1,
                        failed_at=now,
                    )
                    errors.append(writer.adapt_error(error))
                else:
                    if item.is_terminal:
                        settled.append((item.trade_no, item.state.value))
            else:
                errors.append(writer.adapt_error(query_error_row(merchant_no, item, now)))
            if len(statuses) + len(errors) >= self.batch_size:
                pending = await self._flush(pending, statuses, errors, settled, unstorable)
                statuses, errors, settled, unstorable = [], [], [], 0
        pending = await self._flush(pending, statuses, errors, settled, unstorable)
        if pending is not None:
            await pending

    async def _flush(
        self,
        pending: asyncio.Future[None] | None,
        statuses: list[StatusRow],
        errors: list[ErrorRow],
        settled: list[tuple[str, str]],
        unstorable: int,
    ) -> asyncio.Future[None] | None:
        # Wait for the previous batch before starting this one: one batch writing, one filling.
        if pending is not None:
            await pending
        if not statuses and not errors:
            return None
        number = self.counters.batches + 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._db, self._write, statuses, errors, number, settled, unstorable)
        return future

    def _write(
        self,
        statuses: list[StatusRow],
        errors: list[ErrorRow],
        number: int,
        settled: list[tuple[str, str]],
        unstorable: int,
    ) -> None:
        outcome: BatchOutcome = self.writer.write_batch(statuses, errors, batch=number)
        if self.settled is not None:
            refused = set(outcome.refused)  # announce only what the table holds
            self.settled.record(s for s in settled if s[0] not in refused)
        # Counted only once committed, and on the database thread so a crash never over-reports.
        counters = self.counters
        counters.batches = number
        counters.loaded += outcome.loaded
        counters.by_state.update(outcome.by_state)
        counters.note_failures(outcome.errors)
        counters.superseded += outcome.superseded
        counters.unstorable += unstorable + outcome.unstorable
        counters.reversals += len(outcome.reversals)
        for reversal in outcome.reversals:
            self.log.warning(
                "Vexora trade %s: final state %s replaced by %s (the gateway changed a final answer)",
                reversal.trade_no,
                reversal.before,
                reversal.after,
            )
        self.log_progress()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.progress_interval)
            self.log_progress()

    def log_progress(self, *, final: bool = False) -> None:
        """Log one progress line: done/total, rate, retries, 429s, failures, rows upserted."""
        c, s = self.counters, self.stats
        done = c.loaded + c.failed + c.skipped
        elapsed = max(c.elapsed, 1e-9)
        self.log.info(
            "%s: %d/%s trades done (%.0f/s), %d rows upserted in %d batches, %d failed, "
            "%d skipped as terminal, %d retries, %d rate-limited (429)",
            "Vexora sync finished" if final else "Vexora sync progress",
            done,
            self.expected if self.expected is not None else "?",
            (c.loaded + c.failed) / elapsed,
            c.loaded,
            c.batches,
            c.failed,
            c.skipped,
            s.retries if s else 0,
            s.rate_limited if s else 0,
        )


async def _invalid_first(
    given: TradeNos, stream: AsyncIterator[PayoutStatus | PayoutQueryError]
) -> AsyncIterator[PayoutStatus | PayoutQueryError]:
    """The entries that are not trade numbers, as failed lookups naming them, then the fetches."""
    for invalid in given.invalid:
        yield PayoutQueryError(trade_no=invalid.entry, error=invalid.error)
    async for item in stream:
        yield item
