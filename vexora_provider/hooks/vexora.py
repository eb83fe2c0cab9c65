"""The Vexora hook: signed payout-status and balance queries, sync, async and in bulk.

One request shape for every call (``POST`` JSON of string fields plus ``sign``, header
``merchantNo``), one retry policy (:mod:`._retry`), one answer interpreter, shared by the sync
client, the async session and the bulk stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from airflow.sdk import BaseHook

from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import (
    VexoraAPIError,
    VexoraAuthError,
    VexoraError,
    VexoraHTTPError,
    VexoraInvalidTradeNoError,
    VexoraResponseFormatError,
    VexoraTransportError,
)
from vexora_provider.hooks import _retry
from vexora_provider.hooks._transport import AiohttpTransport
from vexora_provider.models import (
    Balance,
    PayoutQueryError,
    PayoutStatus,
    decode_envelope,
    parse_balance,
    parse_payout_status,
)
from vexora_provider.signing import signed_body, timestamp_ms

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = [
    "BALANCE_PATH",
    "MAX_TRADE_NO_LENGTH",
    "PAYOUT_STATUS_PATH",
    "FetchStats",
    "VexoraAsyncSession",
    "VexoraHook",
    "validate_trade_no",
]

log = logging.getLogger(__name__)

PAYOUT_STATUS_PATH = "/v1/vexora/queryPayOutResult"
BALANCE_PATH = "/v1/vexora/queryBalance"
MAX_TRADE_NO_LENGTH = 32
TEST_CONNECTION_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 32

T = TypeVar("T")


def validate_trade_no(trade_no: object) -> str:
    """Return ``trade_no`` if it is 1-32 printable characters, else raise before any request."""
    if not isinstance(trade_no, str):
        raise VexoraInvalidTradeNoError(
            f"a trade number must be a string, got {type(trade_no).__name__}", trade_no=str(trade_no)
        )
    if not trade_no.strip():
        raise VexoraInvalidTradeNoError("a trade number must not be empty or blank", trade_no=trade_no)
    if len(trade_no) > MAX_TRADE_NO_LENGTH:
        raise VexoraInvalidTradeNoError(
            f"a trade number has at most {MAX_TRADE_NO_LENGTH} characters, this has {len(trade_no)}",
            trade_no=trade_no,
        )
    if not trade_no.isprintable():
        raise VexoraInvalidTradeNoError("a trade number must be printable characters only", trade_no=trade_no)
    return trade_no


@dataclass
class FetchStats:
    """
    Counters of one session (or sync hook), for progress logs; plain numbers only.

    :param requested: calls started (trade numbers taken, balance queries).
    :param succeeded: calls that returned a result.
    :param failed: calls that ended in an error (after retries).
    :param retries: extra attempts made after transient failures.
    :param rate_limited: HTTP 429 answers seen.
    :param http_errors: HTTP error answers seen (any non-2xx, 429 included).
    :param transport_errors: timeouts and connection failures seen.
    :param started_at: ``time.monotonic()`` when counting started.
    """

    requested: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0
    http_errors: int = 0
    transport_errors: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, int | float]:
        """Return the counters plus ``elapsed_s`` as a plain dict."""
        data: dict[str, int | float] = asdict(self)
        data["elapsed_s"] = round(time.monotonic() - self.started_at, 3)
        return data


# --- building requests and reading answers (pure, shared by sync and async) -------------------


def _headers(config: VexoraConfig) -> dict[str, str]:
    # Only these: connection extras are configuration, never headers (pitfall 13).
    return {"merchantNo": config.merchant_no, "Content-Type": "application/json"}


def _body(fields: dict[str, str], secret: str) -> bytes:
    return json.dumps(signed_body(fields, secret), separators=(",", ":")).encode()


def _timeout(config: VexoraConfig, cap: float | None = None) -> httpx.Timeout:
    connect, read = config.connect_timeout, config.read_timeout
    if cap is not None:
        connect, read = min(connect, cap), min(read, cap)
    # No pool timeout: concurrency is bounded by our workers, a queued request is not a failure.
    return httpx.Timeout(connect=connect, read=read, write=read, pool=None)


def _scrub(text: str, config: VexoraConfig, limit: int = 160) -> str:
    text = text.replace(config.secret, "***") if config.secret else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _transport_error(exc: httpx.TransportError, config: VexoraConfig, trade_no: str | None) -> VexoraError:
    host = urlsplit(config.base_url).netloc
    detail = str(exc)
    transient = True
    if isinstance(exc, httpx.ConnectTimeout):
        reason = f"connect timeout after {config.connect_timeout:g}s to {host}"
    elif isinstance(exc, httpx.ReadTimeout):
        reason = f"read timeout after {config.read_timeout:g}s from {host}"
    elif isinstance(exc, httpx.WriteTimeout):
        reason = f"write timeout to {host}"
    elif isinstance(exc, httpx.TimeoutException):
        reason = f"timeout waiting for a connection to {host}"
    elif isinstance(exc, httpx.ConnectError):
        refused = "refused" in detail.lower() or "errno 111" in detail.lower()
        reason = f"connection refused by {host}" if refused else f"cannot connect to {host}: {detail}"
    elif isinstance(exc, httpx.RemoteProtocolError):
        reason = f"connection to {host} closed before a complete answer: {detail}"
    elif isinstance(exc, httpx.ReadError):
        reset = "reset" in detail.lower() or "errno 104" in detail.lower()
        reason = f"connection reset by {host}" if reset else f"read error from {host}: {detail}"
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.ProxyError):
        reason, transient = f"cannot send to {config.base_url}: {detail}", False
    else:
        reason = f"{type(exc).__name__} talking to {host}: {detail}"
    return VexoraTransportError(_scrub(reason, config), trade_no=trade_no, transient=transient)


def _check_http(response: httpx.Response, trade_no: str | None) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    transient = status == 429 or status >= 500
    retry_after = _retry.parse_retry_after(response.headers.get("retry-after")) if transient else None
    raise VexoraHTTPError(http_status=status, retry_after=retry_after, trade_no=trade_no, transient=transient)


def _envelope_data(response: httpx.Response, *, trade_no: str | None, query: bool) -> Any:
    """Return ``data`` of a ``0000`` answer or raise the typed error for any other answer."""
    _check_http(response, trade_no)
    try:
        envelope = decode_envelope(response.content, trade_no=trade_no)
    except VexoraResponseFormatError as err:
        # A body that is not the envelope at all is what a proxy error page or a truncated
        # answer looks like: worth another try (load-anchors T6). A well-formed envelope with
        # odd ``data`` is deterministic and fails at once (see _parse_* below).
        err.transient = True
        raise
    code = envelope.code
    if code == "0000":
        return envelope.data
    if code == "8000" and not query:
        raise VexoraAuthError(
            f"gateway refused the request with code 8000 ({envelope.msg or 'no msg'}): "
            "check the merchant number (login) and the app secret (password)",
            code=code,
            trade_no=trade_no,
        )
    # 5000 is a gateway fault; 8000 on a status query means the *query* failed, not the payout.
    transient = code == "5000" or (code == "8000" and query)
    raise VexoraAPIError(code=code, msg=envelope.msg, trade_no=trade_no, transient=transient)


def _parse_status(response: httpx.Response, trade_no: str, config: VexoraConfig) -> PayoutStatus:
    data = _envelope_data(response, trade_no=trade_no, query=True)
    return parse_payout_status(data, trade_no=trade_no, status_map=config.status_map, tz=config.timezone)


def _parse_balance(response: httpx.Response) -> Balance:
    return parse_balance(_envelope_data(response, trade_no=None, query=False))


class _Policy:
    """
    What to do after a failed try: count it, give up, or say how long to wait.

    :param max_attempts: total tries, including the first.
    :param stats: counters to update.
    :param pause: called with the seconds a 429 asked for, to hold the whole session.
    """

    def __init__(self, *, max_attempts: int, stats: FetchStats, pause: Callable[[float], None]) -> None:
        self.max_attempts = max_attempts
        self.stats = stats
        self.pause = pause

    def after_failure(self, error: VexoraError, attempt: int) -> float:
        """Return the delay before the next try, or raise ``error`` (with ``attempts``) when done."""
        error.attempts = attempt
        stats = self.stats
        retry_after = None
        if isinstance(error, VexoraHTTPError):
            stats.http_errors += 1
            retry_after = error.retry_after
            if error.http_status == 429:
                stats.rate_limited += 1
        elif isinstance(error, VexoraTransportError):
            stats.transport_errors += 1
        if not error.transient or attempt >= self.max_attempts:
            raise error
        delay = _retry.backoff_delay(attempt)
        if retry_after is not None:
            delay = retry_after
            self.pause(retry_after)
        elif isinstance(error, VexoraHTTPError) and error.http_status == 429:
            # No Retry-After: still slow the whole session down, not just this request.
            self.pause(delay)
        stats.retries += 1
        log.info(
            "Vexora %s failed (%s); retry %d of %d in %.2fs",
            error.trade_no or "request",
            type(error).__name__,
            attempt,
            self.max_attempts - 1,
            delay,
        )
        return delay


# --- the async session ------------------------------------------------------------------------


class _Borrowed(httpx.AsyncBaseTransport):
    """An injected transport outlives each session: closing the client must not close it."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.handle_async_request = transport.handle_async_request  # type: ignore[method-assign]


class _BorrowedSync(httpx.BaseTransport):
    """Sync twin of :class:`_Borrowed`."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self.handle_request = transport.handle_request  # type: ignore[method-assign]


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
        self._headers = httpx.Headers({"Host": self._status_url.netloc.decode("ascii"), **_headers(config)})
        self._extensions = {"timeout": client.timeout.as_dict()}
        self._limiter = _retry.AsyncRateLimiter(config.requests_per_second)
        self._policy = _Policy(max_attempts=config.max_attempts, stats=self.stats, pause=self._limiter.pause)
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
                    # Signed afresh per try: the timestamp is part of the signature.
                    response = await self._send(url, _body(fields, config.secret))
                except httpx.TransportError as exc:
                    raise _transport_error(exc, config, trade_no) from exc
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
            {"tradeNo": trade_no, "timestamp": timestamp_ms()},
            lambda response: _parse_status(response, trade_no, config),
            trade_no,
        )

    async def get_balance(self) -> Balance:
        """Return the merchant's balance (``queryBalance``)."""
        return await self._call(self._balance_url, {"timestamp": timestamp_ms()}, _parse_balance, None)

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


# --- the hook ---------------------------------------------------------------------------------


def _host_of(conn: Connection) -> str | None:
    """Return the base URL, folding in port and schema when the connection came as a URI."""
    host = conn.host
    if not host:
        return host
    if "://" not in host:
        host = "https://" + host
    parts = urlsplit(host)
    if conn.port and parts.port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{conn.port}")
    if conn.schema and parts.path in ("", "/"):
        parts = parts._replace(path="/" + conn.schema.strip("/"))
    return parts.geturl()


class VexoraHook(BaseHook):
    """
    Query Vexora payout statuses and the merchant balance, with retries and a rate limit.

    The connection is resolved lazily (never in ``__init__``): :attr:`config` on the sync path,
    :meth:`aget_config` on the async path, which uses only Airflow's async connection APIs.

    :param vexora_conn_id: the ``vexora`` connection to use.
    :param transport: sync httpx transport to send through instead of the network (tests).
    :param async_transport: async httpx transport instead of the default aiohttp-backed one.
    """

    conn_name_attr = "vexora_conn_id"
    default_conn_name = "vexora_default"
    conn_type = "vexora"
    hook_name = "Vexora"

    def __init__(
        self,
        vexora_conn_id: str = default_conn_name,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vexora_conn_id = vexora_conn_id
        self._transport = transport
        self._async_transport = async_transport
        self.stats = FetchStats()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vexora_conn_id={self.vexora_conn_id!r})"

    def _config_from(self, conn: Connection, extra: dict[str, Any]) -> VexoraConfig:
        return VexoraConfig.from_connection_fields(
            host=_host_of(conn),
            login=conn.login,
            password=conn.password,
            extra=extra,
            conn_id=self.vexora_conn_id,
        )

    @cached_property
    def config(self) -> VexoraConfig:
        """The validated connection (sync path; do not touch from an event loop)."""
        conn = self.get_connection(self.vexora_conn_id)
        return self._config_from(conn, conn.extra_dejson)

    async def aget_config(self) -> VexoraConfig:
        """Resolve the connection with the async APIs only; shares :attr:`config`'s cache slot."""
        cached = self.__dict__.get("config")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        conn = await self.aget_connection(self.vexora_conn_id)
        config = self._config_from(conn, await conn.aextra_dejson())
        self.__dict__["config"] = config
        return config

    # sync -------------------------------------------------------------------------------------

    def _new_client(self, config: VexoraConfig, timeout: httpx.Timeout) -> httpx.Client:
        transport = _BorrowedSync(self._transport) if self._transport is not None else None
        return httpx.Client(
            transport=transport, timeout=timeout, headers=_headers(config), follow_redirects=False
        )

    @cached_property
    def _client(self) -> httpx.Client:
        return self._new_client(self.config, _timeout(self.config))

    @cached_property
    def _limiter(self) -> _retry.RateLimiter:
        return _retry.RateLimiter(self.config.requests_per_second)

    def _call(
        self,
        client: httpx.Client,
        path: str,
        fields: dict[str, str],
        parse: Callable[[httpx.Response], T],
        trade_no: str | None,
        *,
        max_attempts: int,
    ) -> T:
        config, stats, limiter = self.config, self.stats, self._limiter
        policy = _Policy(max_attempts=max_attempts, stats=stats, pause=limiter.pause)
        url = config.url(path)
        stats.requested += 1
        attempt = 0
        while True:
            attempt += 1
            limiter.acquire()
            try:
                try:
                    response = client.post(url, content=_body(fields, config.secret))
                except httpx.TransportError as exc:
                    raise _transport_error(exc, config, trade_no) from exc
                result = parse(response)
            except VexoraError as exc:
                try:
                    delay = policy.after_failure(exc, attempt)
                except VexoraError:
                    stats.failed += 1
                    raise
                _retry.sleep(delay)
                continue
            stats.succeeded += 1
            return result

    def get_payout_status(self, trade_no: str) -> PayoutStatus:
        """Return the status of one payout; raise a typed :class:`VexoraError` after retries."""
        trade_no = validate_trade_no(trade_no)
        config = self.config
        return self._call(
            self._client,
            PAYOUT_STATUS_PATH,
            {"tradeNo": trade_no, "timestamp": timestamp_ms()},
            lambda response: _parse_status(response, trade_no, config),
            trade_no,
            max_attempts=config.max_attempts,
        )

    def get_balance(self) -> Balance:
        """Return the merchant's balance (``queryBalance``)."""
        return self._call(
            self._client,
            BALANCE_PATH,
            {"timestamp": timestamp_ms()},
            _parse_balance,
            None,
            max_attempts=self.config.max_attempts,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Query the balance once (read-only, own short timeout); never raises."""
        try:
            config = self.config
            with self._new_client(config, _timeout(config, cap=TEST_CONNECTION_TIMEOUT)) as client:
                # One try: a test must answer within the UI's patience, and says what failed.
                self._call(
                    client, BALANCE_PATH, {"timestamp": timestamp_ms()}, _parse_balance, None, max_attempts=1
                )
        except VexoraError as err:
            return False, f"{type(err).__name__}: {err}"
        except Exception as exc:
            secret = self.__dict__["config"].secret if "config" in self.__dict__ else ""
            text = str(exc).replace(secret, "***") if secret else str(exc)
            return False, f"{type(exc).__name__}: {text}"
        return True, f"Connected to {config.base_url} as merchant {config.merchant_no} (queryBalance OK)"

    def close(self) -> None:
        """Close the sync client, if one was opened."""
        client = self.__dict__.pop("_client", None)
        if client is not None:
            client.close()

    # async ------------------------------------------------------------------------------------

    def async_session(
        self, *, concurrency: int = DEFAULT_CONCURRENCY, stats: FetchStats | None = None
    ) -> AbstractAsyncContextManager[VexoraAsyncSession]:
        """Open one async client (closed on exit) for many calls; ``concurrency`` sizes its pool."""
        return self._async_session(concurrency=concurrency, stats=stats)

    @asynccontextmanager
    async def _async_session(
        self, *, concurrency: int, stats: FetchStats | None
    ) -> AsyncIterator[VexoraAsyncSession]:
        config = await self.aget_config()
        if self._async_transport is not None:
            transport: httpx.AsyncBaseTransport = _Borrowed(self._async_transport)
        else:
            transport = AiohttpTransport(limit=max(1, concurrency))
        client = httpx.AsyncClient(
            transport=transport, timeout=_timeout(config), headers=_headers(config), follow_redirects=False
        )
        async with client:
            session = VexoraAsyncSession(
                config=config, client=client, transport=transport, concurrency=concurrency, stats=stats
            )
            try:
                yield session
            finally:
                # Before the client closes, or abandoned workers would fail on a closed client.
                await session.aclose()

    async def aget_payout_status(self, trade_no: str) -> PayoutStatus:
        """Async :meth:`get_payout_status` in a one-call session (use a session for many)."""
        validate_trade_no(trade_no)
        async with self.async_session(concurrency=1) as session:
            return await session.get_payout_status(trade_no)

    async def aget_balance(self) -> Balance:
        """Async :meth:`get_balance`."""
        async with self.async_session(concurrency=1) as session:
            return await session.get_balance()

    async def astream_payout_statuses(
        self,
        trade_nos: Iterable[str] | AsyncIterable[str],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        stats: FetchStats | None = None,
    ) -> AsyncIterator[PayoutStatus | PayoutQueryError]:
        """Open a session and yield every trade's result as it completes (see the session method)."""
        async with self.async_session(concurrency=concurrency, stats=stats) as session:
            async for item in session.stream_payout_statuses(trade_nos, concurrency=concurrency):
                yield item
