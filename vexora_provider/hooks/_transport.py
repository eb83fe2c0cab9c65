"""Senders: the only code that knows which HTTP library carries the bytes.

A sender takes an endpoint path and a signed body and returns an
:class:`~vexora_provider.hooks._protocol.Answer`, or raises a
:class:`~vexora_provider.hooks._protocol.TransportFailure`; the attempt driver does the rest.

- :class:`HttpxSender` -- the sync hook, over ``httpx.Client``.
- :class:`AiohttpSender` -- the default async path, straight on ``aiohttp``: httpcore's async
  pool rescans every connection for every queued request and collapses above ~16 requests in
  flight (encode/httpx#3215), and an httpx layer over aiohttp cost 10-20 % of the client's CPU
  per request at high concurrency.
- :class:`HttpxAsyncSender` -- an injected ``httpx.AsyncBaseTransport`` (``httpx.MockTransport``,
  the simulator's in-process transport), over ``httpx.AsyncClient``.

Both libraries get the proxy and TLS context decided in :mod:`._network`, never their own
reading of the environment, so every path takes the same route and trusts the same CAs.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
from yarl import URL

from vexora_provider._urls import ProxyURL
from vexora_provider.config import VexoraConfig
from vexora_provider.hooks._network import Network
from vexora_provider.hooks._protocol import Answer, TransportFailure, request_headers
from vexora_provider.hooks._shared import LoopShared

__all__ = [
    "AiohttpSender",
    "BorrowedAsyncTransport",
    "BorrowedTransport",
    "HttpxAsyncSender",
    "HttpxSender",
    "aiohttp_failure",
    "httpx_client",
    "httpx_failure",
    "httpx_timeout",
    "shared_aiohttp_sender",
]


def httpx_timeout(config: VexoraConfig, cap: float | None = None) -> httpx.Timeout:
    """The connection's timeouts for httpx, each at most ``cap`` seconds when given."""
    connect, read = config.connect_timeout, config.read_timeout
    if cap is not None:
        connect, read = min(connect, cap), min(read, cap)
    # No pool timeout: concurrency is bounded by our workers, a queued request is not a failure.
    return httpx.Timeout(connect=connect, read=read, write=read, pool=None)


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    # httpx wraps httpcore's error, which wraps the ssl module's: look a few links down.
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _verify_message(error: ssl.SSLCertVerificationError) -> str:
    return f"certificate verify failed: {error.verify_message or error.reason or error}"


def _proxy_status(detail: str) -> int | None:
    head = detail.split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def httpx_failure(exc: httpx.TransportError) -> TransportFailure:
    """Name what went wrong with an httpx request that got no answer."""
    detail = str(exc)
    lowered = detail.lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return TransportFailure("connect_timeout", detail)
    if isinstance(exc, httpx.ReadTimeout):
        return TransportFailure("read_timeout", detail)
    if isinstance(exc, httpx.WriteTimeout):
        return TransportFailure("write_timeout", detail)
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure("pool_timeout", detail)
    if isinstance(exc, httpx.ProxyError):
        return TransportFailure("proxy", detail, status=_proxy_status(detail))
    if isinstance(exc, httpx.ConnectError):
        certificate = _certificate_error(exc)
        if certificate is not None:
            return TransportFailure("tls_verify", _verify_message(certificate))
        if "refused" in lowered or "errno 111" in lowered:
            return TransportFailure("refused", detail)
        return TransportFailure("connect", detail)
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransportFailure("closed", detail)
    if isinstance(exc, httpx.ReadError):
        reset = "reset" in lowered or "errno 104" in lowered
        return TransportFailure("reset" if reset else "read", detail)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return TransportFailure("unsupported", detail)
    return TransportFailure("other", f"{type(exc).__name__}: {detail}")


def aiohttp_failure(exc: aiohttp.ClientError | TimeoutError) -> TransportFailure:
    """Name what went wrong with an aiohttp request that got no answer."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TransportFailure("tls_verify", _verify_message(exc.certificate_error))  # type: ignore[arg-type]
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return TransportFailure("proxy", exc.message, status=exc.status)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TransportFailure("connect_timeout", str(exc))
    if isinstance(exc, TimeoutError):
        return TransportFailure("read_timeout", str(exc))
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return TransportFailure("refused", str(exc.os_error))
        return TransportFailure("connect", str(exc.os_error) or str(exc))
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return TransportFailure("closed", str(exc))
    if isinstance(exc, aiohttp.ClientOSError):
        reset = isinstance(exc, ConnectionResetError) or exc.errno == errno.ECONNRESET
        return TransportFailure("reset" if reset else "read", str(exc))
    return TransportFailure("other", f"{type(exc).__name__}: {exc}")


class HttpxSender:
    """
    Send through one ``httpx.Client`` (the sync hook).

    :param client: the client; its headers, timeouts, proxy and TLS are already set.
    :param config: the connection.
    """

    def __init__(self, client: httpx.Client, config: VexoraConfig) -> None:
        self.client = client
        self._base_url = config.base_url

    def __call__(self, endpoint: str, body: bytes) -> Answer:
        """Send one request and return the whole answer."""
        try:
            response = self.client.post(self._base_url + endpoint, content=body)
        except httpx.TransportError as exc:
            raise httpx_failure(exc) from exc
        return Answer(response.status_code, response.content, response.headers.get("retry-after"))


def httpx_client(
    config: VexoraConfig,
    network: Network,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout_cap: float | None = None,
) -> httpx.Client:
    """The sync client: the connection's headers and timeouts, the decided proxy and TLS context."""
    proxy = network.proxy.with_credentials if network.proxy and transport is None else None
    return httpx.Client(
        transport=BorrowedTransport(transport) if transport is not None else None,
        proxy=proxy,
        verify=network.ssl,
        trust_env=False,
        timeout=httpx_timeout(config, timeout_cap),
        headers=request_headers(config),
        follow_redirects=False,
    )


def httpx_async_client(config: VexoraConfig, transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    """The async client over an injected transport, with the same headers and timeouts as the sync one."""
    return httpx.AsyncClient(
        transport=BorrowedAsyncTransport(transport),
        timeout=httpx_timeout(config),
        headers=request_headers(config),
        follow_redirects=False,
        trust_env=False,
    )


class HttpxAsyncSender:
    """
    Send through an ``httpx.AsyncClient`` over an injected transport (tests, the simulator).

    :param client: the client; the caller opens and closes it.
    :param config: the connection.
    """

    def __init__(self, client: httpx.AsyncClient, config: VexoraConfig) -> None:
        self.client = client
        self._base_url = config.base_url

    async def __call__(self, endpoint: str, body: bytes) -> Answer:
        """Send one request and return the whole answer."""
        try:
            response = await self.client.post(self._base_url + endpoint, content=body)
        except httpx.TransportError as exc:
            raise httpx_failure(exc) from exc
        return Answer(response.status_code, response.content, response.headers.get("retry-after"))


class AiohttpSender:
    """
    Send straight through one ``aiohttp.ClientSession``, created lazily inside the running loop.

    :param config: the connection (headers, timeouts, base URL).
    :param network: the proxy and TLS context to use.
    :param limit: most connections open at once (the fan-out's concurrency).
    """

    def __init__(self, *, config: VexoraConfig, network: Network, limit: int) -> None:
        self._config = config
        self._network = network
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._options: dict[str, Any] = {"allow_redirects": False}
        proxy = network.proxy
        if proxy is not None:
            self._options["proxy"] = proxy.url
            if proxy.username:
                auth = aiohttp.encode_basic_auth(proxy.username, proxy.password or "")
                self._options["proxy_headers"] = {"Proxy-Authorization": auth}

    def _open(self) -> aiohttp.ClientSession:
        config, network = self._config, self._network
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=0, ttl_dns_cache=300, ssl=network.ssl
            ),
            headers=request_headers(config),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=config.connect_timeout, sock_read=config.read_timeout
            ),
            # The route was decided in _network, the same for both paths: no second opinion.
            trust_env=False,
            # Not a browser: no cookies kept between payout queries.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    def _url(self, endpoint: str) -> URL:
        url = self._urls.get(endpoint)
        if url is None:
            url = self._urls[endpoint] = URL(self._config.url(endpoint))
        return url

    async def __call__(self, endpoint: str, body: bytes) -> Answer:
        """Send one request and return the whole answer."""
        session = self._session or self._open()
        try:
            async with session.post(self._url(endpoint), data=body, **self._options) as response:
                content = await response.read()
                return Answer(response.status, content, response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise aiohttp_failure(exc) from exc

    async def aclose(self) -> None:
        """Close the aiohttp session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


# Everything a sender's requests depend on: sessions agreeing on all of it can share one pool.
_SenderKey = tuple[str, str, float, float, ProxyURL | None, ssl.SSLContext, int]


_shared_senders: LoopShared[_SenderKey, AiohttpSender] = LoopShared(AiohttpSender.aclose)


@asynccontextmanager
async def shared_aiohttp_sender(
    *, config: VexoraConfig, network: Network, limit: int
) -> AsyncIterator[AiohttpSender]:
    """
    An :class:`AiohttpSender` shared by every session of the running loop with the same connection.

    Many short-lived users of one connection (the triggers of a triggerer) then keep one pool of
    at most ``limit`` connections, reused from poll to poll, instead of one pool each. The pool
    closes when the last session using it leaves.
    """
    key: _SenderKey = (
        config.base_url,
        config.merchant_no,
        config.connect_timeout,
        config.read_timeout,
        network.proxy,
        network.ssl,
        limit,
    )
    async with _shared_senders.use(
        key, lambda: AiohttpSender(config=config, network=network, limit=limit)
    ) as sender:
        yield sender


class BorrowedAsyncTransport(httpx.AsyncBaseTransport):
    """An injected transport outlives each session: closing the client must not close it."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.handle_async_request = transport.handle_async_request  # type: ignore[method-assign]


class BorrowedTransport(httpx.BaseTransport):
    """Sync twin of :class:`BorrowedAsyncTransport`."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self.handle_request = transport.handle_request  # type: ignore[method-assign]
