"""``VexoraAsyncSession``: one async sender, one rate limiter, one attempt driver, and the bulk stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import cast

from vexora_provider._urls import ProxyURL
from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import (
    Permanence,
    VexoraError,
    VexoraInvalidTradeNoError,
    VexoraTransportError,
)
from vexora_provider.hooks import _retry
from vexora_provider.hooks._create import PayoutRequest, create_flow, lookup_call
from vexora_provider.hooks._driver import Credentials, Driver
from vexora_provider.hooks._protocol import Answer, FetchStats, clean_trade_no
from vexora_provider.hooks._runners import AsyncRunner
from vexora_provider.lineage.hook import PayoutsLineage
from vexora_provider.models import Balance, PayoutQueryError, PayoutStatus
from vexora_provider.trade_nos import DistinctTradeNos

__all__ = ["DEFAULT_CONCURRENCY", "VexoraAsyncSession"]

log = logging.getLogger("vexora_provider.hooks.vexora")

DEFAULT_CONCURRENCY = 32

_DONE = object()


class _Stop:
    """Ends a stream with an exception: a broken source, or a connection that cannot work."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def _cancel(tasks: Iterable[asyncio.Task[None]]) -> None:
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


class VexoraAsyncSession:
    """
    One sender, one rate limiter, one attempt driver and one set of counters; open it with
    :meth:`VexoraHook.async_session` so its connections are closed on exit.

    :param config: the resolved connection.
    :param send: sends a signed body to an endpoint path and returns the answer.
    :param proxy: the proxy the sender goes through (named in transport errors), if any.
    :param concurrency: default number of requests in flight for :meth:`stream_payout_statuses`.
    :param stats: counters to update; a fresh :class:`FetchStats` when omitted.
    :param limiter: the rate limiter shared by the session's requests; by default one honouring
        the connection's ``requests_per_second``.
    :param lineage: where the payouts read or written are reported (the hook's); none by default.
    """

    def __init__(
        self,
        *,
        config: VexoraConfig,
        send: Callable[[str, bytes], Awaitable[Answer]],
        proxy: ProxyURL | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        stats: FetchStats | None = None,
        limiter: _retry.AsyncLimiter | None = None,
        lineage: PayoutsLineage | None = None,
    ) -> None:
        self.config = config
        self.lineage = lineage if lineage is not None else PayoutsLineage(self, enabled=False)
        self.stats = stats if stats is not None else FetchStats()
        self.concurrency = concurrency
        self._driver = Driver(config=config, stats=self.stats, proxy=proxy)
        self._limiter = (
            limiter if limiter is not None else _retry.AsyncRateLimiter(config.requests_per_second)
        )
        self._runner = AsyncRunner(self._driver, send, self._limiter)
        self._streams: set[asyncio.Task[None]] = set()

    async def get_payout_status(self, trade_no: str) -> PayoutStatus:
        """Return the status of one payout; raise a typed :class:`VexoraError` after retries."""
        trade_no = clean_trade_no(trade_no)
        self.lineage.read(self.config.merchant_no)
        return await self._runner.run(self._driver.status_call(trade_no))

    async def get_balance(self) -> Balance:
        """Return the merchant's balance (``queryBalance``)."""
        return await self._runner.run(self._driver.balance_call())

    async def find_payout(self, trade_no: str) -> PayoutStatus | None:
        """Return the payout's status, or ``None`` when the gateway says it has no such payout."""
        trade_no = clean_trade_no(trade_no)
        self.lineage.read(self.config.merchant_no)
        return await self._runner.run(lookup_call(self._driver, trade_no))

    async def create_payout(self, request: PayoutRequest) -> PayoutStatus:
        """Create a validated payout at most once (see :meth:`VexoraHook.create_payout`)."""
        self.lineage.read(self.config.merchant_no)
        status = await self._runner.run_flow(create_flow(self._driver, request))
        self.lineage.wrote(self.config.merchant_no)
        return status

    async def _fetch_one(self, trade_no: object) -> PayoutStatus | PayoutQueryError:
        try:
            # get_payout_status() without its coroutine: this runs once per trade of a bulk.
            return await self._runner.run(self._driver.status_call(clean_trade_no(trade_no)))
        except VexoraInvalidTradeNoError as err:
            # Rejected before any request: counted as taken and failed, never dropped.
            self.stats.requested += 1
            self.stats.failed += 1
            shown = str(trade_no) if err.trade_no is None else err.trade_no
            return PayoutQueryError(trade_no=shown, error=err)
        except VexoraError as err:
            return PayoutQueryError(trade_no=str(trade_no), error=err)
        except Exception as exc:
            # A bug or an exotic transport failure must not drop this trade or stop the bulk.
            log.warning("Vexora trade %s: unexpected %s", trade_no, type(exc).__name__)
            self.stats.failed += 1
            error = VexoraTransportError(
                f"unexpected {type(exc).__name__}", trade_no=str(trade_no), attempts=1
            )
            error.__cause__ = exc
            return PayoutQueryError(trade_no=str(trade_no), error=error)

    async def stream_payout_statuses(
        self, trade_nos: Iterable[str] | AsyncIterable[str], *, concurrency: int | None = None
    ) -> AsyncIterator[PayoutStatus | PayoutQueryError]:
        """
        Fetch many payouts concurrently and yield each result as it completes.

        Entries follow the trade-number rule of every task: surrounding whitespace is removed,
        ``bytes`` are decoded, an ``int`` is its digits, and a trade number given twice is fetched
        once. Every distinct trade number yields exactly once: a :class:`PayoutStatus` or a
        :class:`PayoutQueryError` (also for an entry that is not a trade number, naming it). Live
        tasks and buffered results stay ``O(concurrency)``: the input is pulled lazily and a slow
        consumer holds the workers back; only the set of distinct trade numbers seen (tens of bytes
        each) grows with the input. ``stats.duplicates`` counts the repeats left out.

        Until the session has had its first answer, one trade goes alone: if the credentials are
        wrong (or the certificate untrusted, or the proxy refuses), that costs one or two requests
        instead of one per worker. An error whose permanence is ``connection`` ends the stream by
        raising it, since every remaining trade would fail the same way.
        """
        if isinstance(trade_nos, str | bytes | bytearray | memoryview | Mapping):
            # Iterating one would query each character (or byte, or key) as a trade number.
            raise TypeError(
                f"trade_nos must be an iterable of trade numbers, not a {type(trade_nos).__name__}; "
                "pass a list, e.g. [trade_no]"
            )
        self.lineage.read(self.config.merchant_no)  # once per stream, not per trade
        workers_n = max(1, concurrency or self.concurrency)
        results: asyncio.Queue[object] = asyncio.Queue(maxsize=workers_n)
        first_answer = asyncio.Event()
        if self._driver.credentials is Credentials.GOOD:
            first_answer.set()
        tasks: list[asyncio.Task[None]] = []
        inbox: asyncio.Queue[object] = asyncio.Queue(maxsize=workers_n)
        pull: Callable[[], object] | None = None
        if isinstance(trade_nos, AsyncIterable):
            tasks.append(asyncio.create_task(self._feed(trade_nos, inbox, workers_n, self.stats)))
        else:
            pull = self._sync_taker(self._distinct(trade_nos))

        # The queue calls below take their no-wait paths when they can: the same semantics as
        # ``await put()``/``await get()``, without a coroutine per trade (thousands a second).
        async def worker(lead: bool) -> None:
            if not lead:
                await first_answer.wait()
            while True:
                if pull is not None:
                    trade_no = pull()
                else:
                    trade_no = inbox.get_nowait() if not inbox.empty() else await inbox.get()
                if trade_no is _DONE:
                    break
                if type(trade_no) is _Stop:
                    item: object = trade_no
                else:
                    item = result = await self._fetch_one(trade_no)
                    first_answer.set()
                    if (
                        isinstance(result, PayoutQueryError)
                        and result.error.permanence is Permanence.CONNECTION
                    ):
                        item = _Stop(result.error)
                # Not in a ``finally``: a cancelled worker must not block on a full queue.
                if results.full():
                    await results.put(item)
                else:
                    results.put_nowait(item)
                if type(item) is _Stop:
                    return
            first_answer.set()
            await results.put(_DONE)

        tasks.extend(asyncio.create_task(worker(lead=i == 0)) for i in range(workers_n))
        self._streams.update(tasks)
        try:
            running = workers_n
            while running:
                item = results.get_nowait() if not results.empty() else await results.get()
                if item is _DONE:
                    running -= 1
                elif isinstance(item, _Stop):
                    raise item.exc
                else:
                    yield cast("PayoutStatus | PayoutQueryError", item)
        finally:
            await _cancel(tasks)
            self._streams.difference_update(tasks)

    async def aclose(self) -> None:
        """Stop the workers of streams abandoned without ``aclose()`` (a bare ``break``)."""
        await _cancel(self._streams)
        self._streams.clear()

    @staticmethod
    def _sync_taker(iterator: Iterator[object]) -> Callable[[], object]:
        """Return a function giving the next trade number, ``_DONE``, or ``_Stop`` if the source broke."""
        exhausted = False

        def take() -> object:
            nonlocal exhausted
            if exhausted:
                return _DONE
            try:
                return next(iterator)
            except StopIteration:
                exhausted = True
                return _DONE
            except Exception as exc:
                exhausted = True
                return _Stop(exc)

        return take

    def _distinct(self, entries: Iterable[object]) -> Iterator[object]:
        distinct = DistinctTradeNos()
        for entry in entries:
            keep, trade_no = distinct.pick(entry)
            if keep:
                yield trade_no
            else:
                self.stats.duplicates += 1

    @staticmethod
    async def _feed(
        source: AsyncIterable[object], inbox: asyncio.Queue[object], workers_n: int, stats: FetchStats
    ) -> None:
        try:
            distinct = DistinctTradeNos()
            async for entry in source:
                keep, trade_no = distinct.pick(entry)
                if keep:
                    await inbox.put(trade_no)
                else:
                    stats.duplicates += 1
        except Exception as exc:
            await inbox.put(_Stop(exc))  # the worker taking it ends the stream with it
        for _ in range(workers_n):
            await inbox.put(_DONE)
