"""``VexoraAsyncSession``: one async client, one rate limiter, and the bulk stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

import httpx

from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import VexoraError, VexoraInvalidTradeNoError, VexoraTransportError
from vexora_provider.hooks import _retry
from vexora_provider.hooks._protocol import (
    BALANCE_PATH,
    PAYOUT_STATUS_PATH,
    FetchStats,
    RetryPolicy,
    parse_balance_answer,
    parse_status_answer,
    request_headers,
    signed_json,
    transport_error,
    validate_trade_no,
)
from vexora_provider.models import Balance, PayoutQueryError, PayoutStatus

__all__ = ["DEFAULT_CONCURRENCY", "VexoraAsyncSession"]

log = logging.getLogger("vexora_provider.hooks.vexora")

DEFAULT_CONCURRENCY = 32

T = TypeVar("T")

_DONE = object()


class _SourceFailed:
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
    One ``httpx.AsyncClient``, one rate limiter and one set of counters; open it with
    :meth:`VexoraHook.async_session` so the client is closed on exit.

    :param config: the resolved connection.
    :param client: the session's client (owned and closed by the caller).
    :param transport: the client's transport; requests go straight to it (see ``_send``).
    :param concurrency: default number of requests in flight for :meth:`stream_payout_statuses`.
    :param stats: counters to update; a fresh :class:`FetchStats` when omitted.
    """

    def __init__(
        self,
        *,
        config: VexoraConfig,
        client: httpx.AsyncClient,
        transport: httpx.AsyncBaseTransport,
        concurrency: int = DEFAULT_CONCURRENCY,
        stats: FetchStats | None = None,
    ) -> None:
        self.config = config
        self.stats = stats if stats is not None else FetchStats()
        self.concurrency = concurrency
        self.client = client
        self._transport = transport
        self._status_url = httpx.URL(config.url(PAYOUT_STATUS_PATH))
        self._balance_url = httpx.URL(config.url(BALANCE_PATH))
        # Built once: httpx copies a Headers object cheaply but normalises plain pairs per request.
        self._headers = httpx.Headers(
            {"Host": self._status_url.netloc.decode("ascii"), **request_headers(config)}
        )
        self._extensions = {"timeout": client.timeout.as_dict()}
        self._limiter = _retry.AsyncRateLimiter(config.requests_per_second)
        self._policy = RetryPolicy(
            max_attempts=config.max_attempts, stats=self.stats, pause=self._limiter.pause
        )
        self._streams: set[asyncio.Task[None]] = set()

    async def _call(
        self,
        url: httpx.URL,
        fields: dict[str, str],
        parse: Callable[[httpx.Response], T],
        trade_no: str | None,
    ) -> T:
        stats, config = self.stats, self.config
        stats.requested += 1
        attempt = 0
        while True:
            attempt += 1
            await self._limiter.acquire()
            try:
                try:
                    # Signed afresh per try, with a fresh timestamp.
                    response = await self._send(url, signed_json(fields, config.secret))
                except httpx.TransportError as exc:
                    raise transport_error(exc, config, trade_no) from exc
                result = parse(response)
            except VexoraError as exc:
                try:
                    delay = self._policy.after_failure(exc, attempt)
                except VexoraError:
                    stats.failed += 1
                    raise
                await _retry.asleep(delay)
                continue
            stats.succeeded += 1
            return result

    async def _send(self, url: httpx.URL, body: bytes) -> httpx.Response:
        # Straight to the transport: AsyncClient.send adds ~80 µs of CPU per request (request
        # merging, auth and redirect machinery, cookie extraction through urllib shims) for
        # features we do not use -- a third of the budget at 1,000 req/s. The client still owns
        # the transport and its lifetime.
        headers = self._headers.copy()
        headers["Content-Length"] = str(len(body))
        # A ready stream plus complete headers skips httpx's per-request header defaulting.
        request = httpx.Request(
            "POST", url, headers=headers, stream=httpx.ByteStream(body), extensions=self._extensions
        )
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def get_payout_status(self, trade_no: str) -> PayoutStatus:
        """Return the status of one payout; raise a typed :class:`VexoraError` after retries."""
        trade_no = validate_trade_no(trade_no)
        config = self.config
        return await self._call(
            self._status_url,
            {"tradeNo": trade_no},
            lambda response: parse_status_answer(response, trade_no, config),
            trade_no,
        )

    async def get_balance(self) -> Balance:
        """Return the merchant's balance (``queryBalance``)."""
        return await self._call(self._balance_url, {}, parse_balance_answer, None)

    async def _fetch_one(self, trade_no: object) -> PayoutStatus | PayoutQueryError:
        try:
            return await self.get_payout_status(trade_no)  # type: ignore[arg-type]
        except VexoraInvalidTradeNoError as err:
            # Rejected before any request: counted as taken and failed, never dropped.
            self.stats.requested += 1
            self.stats.failed += 1
            return PayoutQueryError(trade_no=str(trade_no), error=err)
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

        Every trade number yields exactly once: a :class:`PayoutStatus` or a
        :class:`PayoutQueryError`. Live tasks and buffered results stay ``O(concurrency)``: the
        input is pulled lazily and a slow consumer holds the workers back.
        """
        workers_n = max(1, concurrency or self.concurrency)
        results: asyncio.Queue[object] = asyncio.Queue(maxsize=workers_n)
        tasks: list[asyncio.Task[None]] = []
        if isinstance(trade_nos, AsyncIterable):
            inbox: asyncio.Queue[object] = asyncio.Queue(maxsize=workers_n)
            tasks.append(asyncio.create_task(self._feed(trade_nos, inbox, workers_n, results)))
            take: Callable[[], Any] = inbox.get
        else:
            iterator = iter(trade_nos)
            take = self._sync_taker(iterator, results)

        async def worker() -> None:
            # Not in a ``finally``: a cancelled worker must not block on a full queue.
            while (trade_no := await take()) is not _DONE:
                await results.put(await self._fetch_one(trade_no))
            await results.put(_DONE)

        tasks.extend(asyncio.create_task(worker()) for _ in range(workers_n))
        self._streams.update(tasks)
        try:
            running = workers_n
            while running:
                item = await results.get()
                if item is _DONE:
                    running -= 1
                elif isinstance(item, _SourceFailed):
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
    def _sync_taker(iterator: Iterator[str], results: asyncio.Queue[object]) -> Callable[[], Any]:
        exhausted = False

        async def take() -> object:
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
                await results.put(_SourceFailed(exc))
                return _DONE

        return take

    @staticmethod
    async def _feed(
        source: AsyncIterable[str],
        inbox: asyncio.Queue[object],
        workers_n: int,
        results: asyncio.Queue[object],
    ) -> None:
        try:
            async for trade_no in source:
                await inbox.put(trade_no)
        except Exception as exc:
            await results.put(_SourceFailed(exc))
        for _ in range(workers_n):
            await inbox.put(_DONE)
