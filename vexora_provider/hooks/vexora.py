"""The Vexora hook: signed payout-status and balance queries, sync, async and in bulk.

The request shape, answer interpretation and retry policy live in :mod:`._protocol`, the async
session and bulk stream in :mod:`._session`, backoff and rate limiting in :mod:`._retry`, the
default async transport in :mod:`._transport`; this module wires them to an Airflow connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
from airflow.sdk import BaseHook

from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import VexoraError
from vexora_provider.hooks import _retry
from vexora_provider.hooks._protocol import (
    BALANCE_PATH,
    MAX_TRADE_NO_LENGTH,
    PAYOUT_STATUS_PATH,
    FetchStats,
    RetryPolicy,
    parse_balance_answer,
    parse_status_answer,
    request_headers,
    signed_json,
    timeout_for,
    transport_error,
    validate_trade_no,
)
from vexora_provider.hooks._session import DEFAULT_CONCURRENCY, VexoraAsyncSession
from vexora_provider.hooks._transport import AiohttpTransport, BorrowedAsyncTransport, BorrowedTransport
from vexora_provider.models import Balance, PayoutQueryError, PayoutStatus

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = [
    "BALANCE_PATH",
    "DEFAULT_CONCURRENCY",
    "MAX_TRADE_NO_LENGTH",
    "PAYOUT_STATUS_PATH",
    "FetchStats",
    "VexoraAsyncSession",
    "VexoraHook",
    "validate_trade_no",
]

TEST_CONNECTION_TIMEOUT = 10.0

T = TypeVar("T")


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
        transport = BorrowedTransport(self._transport) if self._transport is not None else None
        return httpx.Client(
            transport=transport, timeout=timeout, headers=request_headers(config), follow_redirects=False
        )

    @cached_property
    def _client(self) -> httpx.Client:
        return self._new_client(self.config, timeout_for(self.config))

    @cached_property
    def _limiter(self) -> _retry.RateLimiter:
        return _retry.RateLimiter(self.config.requests_per_second)

    def _retry_policy(self, max_attempts: int) -> RetryPolicy:
        return RetryPolicy(max_attempts=max_attempts, stats=self.stats, pause=self._limiter.pause)

    @cached_property
    def _policy(self) -> RetryPolicy:
        return self._retry_policy(self.config.max_attempts)

    def _call(
        self,
        client: httpx.Client,
        path: str,
        fields: dict[str, str],
        parse: Callable[[httpx.Response], T],
        trade_no: str | None,
        *,
        policy: RetryPolicy,
    ) -> T:
        config, stats, limiter = self.config, self.stats, self._limiter
        url = config.url(path)
        stats.requested += 1
        attempt = 0
        while True:
            attempt += 1
            limiter.acquire()
            try:
                try:
                    response = client.post(url, content=signed_json(fields, config.secret))
                except httpx.TransportError as exc:
                    raise transport_error(exc, config, trade_no) from exc
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
            {"tradeNo": trade_no},
            lambda response: parse_status_answer(response, trade_no, config),
            trade_no,
            policy=self._policy,
        )

    def get_balance(self) -> Balance:
        """Return the merchant's balance (``queryBalance``)."""
        return self._call(self._client, BALANCE_PATH, {}, parse_balance_answer, None, policy=self._policy)

    def test_connection(self) -> tuple[bool, str]:
        """Query the balance once (read-only, own short timeout); never raises."""
        try:
            config = self.config
            with self._new_client(config, timeout_for(config, cap=TEST_CONNECTION_TIMEOUT)) as client:
                # One try: a test must answer within the UI's patience, and says what failed.
                policy = self._retry_policy(max_attempts=1)
                self._call(client, BALANCE_PATH, {}, parse_balance_answer, None, policy=policy)
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
            transport: httpx.AsyncBaseTransport = BorrowedAsyncTransport(self._async_transport)
        else:
            transport = AiohttpTransport(limit=max(1, concurrency))
        client = httpx.AsyncClient(
            transport=transport,
            timeout=timeout_for(config),
            headers=request_headers(config),
            follow_redirects=False,
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
