"""An ``httpx.AsyncBaseTransport`` over one ``aiohttp.ClientSession``.

Why: httpcore's async pool rescans every connection for every queued request, so one
``httpx.AsyncClient`` collapses above ~16 requests in flight (encode/httpx#3215; ~90 req/s at
C = 64 and 50 ms latency here). aiohttp's connector has no such cost. Keeping the httpx API on
top means tests still inject ``httpx.MockTransport`` or the simulator's transports, and callers
see only httpx exceptions: aiohttp's are translated below.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
import httpx

__all__ = ["AiohttpTransport", "BorrowedAsyncTransport", "BorrowedTransport"]

# Headers aiohttp computes itself from the URL and the body; sending httpx's copies would
# duplicate them.
_SKIP_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """
    Send httpx requests through aiohttp; the session is created lazily inside the running loop.

    :param limit: most connections open at once (the fan-out's concurrency).
    """

    def __init__(self, *, limit: int = 100) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Not a browser: no cookies kept between payout queries.
                cookie_jar=aiohttp.DummyCookieJar(),
                # httpx decodes Content-Encoding itself when it reads the body we hand back.
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            )
        return self._session

    def _timeout(self, extensions: Mapping[str, object]) -> aiohttp.ClientTimeout:
        spec = extensions.get("timeout")
        values = spec if isinstance(spec, dict) else {}
        key = (values.get("connect"), values.get("read"), values.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, pool = key
            timeout = aiohttp.ClientTimeout(total=None, connect=pool, sock_connect=connect, sock_read=read)
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request and return the fully read response."""
        session = self._client_session()
        # From the raw pairs: Headers.items() re-detects the encoding on every access.
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in request.headers.raw
            if k.lower() not in _SKIP_HEADERS
        }
        timeout = self._timeout(request.extensions)
        try:
            async with session.request(
                request.method,
                str(request.url),
                data=await request.aread(),
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                content = await response.read()
                result = httpx.Response(
                    response.status,
                    headers=response.raw_headers,
                    stream=httpx.ByteStream(content),
                    request=request,
                )
                if "Content-Encoding" not in response.headers:
                    # Identity body: it is already final, so pre-fill what ``aread()`` would
                    # compute through httpx's decoder chain (~40% of our per-request CPU at
                    # 1,000 req/s). Encoded bodies take the normal path. httpx is pinned.
                    result._content = content
                return result
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        except (TimeoutError, aiohttp.SocketTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc.os_error), request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientOSError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(f"{type(exc).__name__}: {exc}", request=request) from exc

    async def aclose(self) -> None:
        """Close the aiohttp session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class BorrowedAsyncTransport(httpx.AsyncBaseTransport):
    """An injected transport outlives each session: closing the client must not close it."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.handle_async_request = transport.handle_async_request  # type: ignore[method-assign]


class BorrowedTransport(httpx.BaseTransport):
    """Sync twin of :class:`BorrowedAsyncTransport`."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self.handle_request = transport.handle_request  # type: ignore[method-assign]
