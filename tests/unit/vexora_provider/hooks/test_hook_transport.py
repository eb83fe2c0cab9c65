from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import aiohttp.web
import httpx
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from vexora_hook_support import MERCHANT, assert_no_secret
from yarl import URL

from vexora_provider.exceptions import VexoraTransportError
from vexora_provider.hooks._transport import aiohttp_failure, httpx_failure
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutQueryError, PayoutStatus


@pytest.fixture
async def loopback_server() -> AsyncIterator[str]:
    """A real aiohttp server on 127.0.0.1: answers, hangs, or drops the connection by trade number."""

    async def handle(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        body = await request.json()
        trade_no = body.get("tradeNo", "")
        if trade_no == "HANG":
            await asyncio.sleep(5)
        if trade_no == "DROP":
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.1)
        if trade_no == "GZIP":
            response = aiohttp.web.json_response(
                {
                    "code": "0000",
                    "msg": "success",
                    "data": {"tradeNo": "GZIP", "status": "0000", "amount": 1.10},
                }
            )
            response.enable_compression()
            return response
        data = {"tradeNo": trade_no, "status": "0015", "echo": request.headers.get("merchantNo")}
        return aiohttp.web.json_response({"code": "0000", "msg": "success", "data": data})

    app = aiohttp.web.Application()
    app.router.add_post("/nigeria/v1/vexora/queryPayOutResult", handle)
    runner = aiohttp.web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/nigeria"
    finally:
        await runner.cleanup()


class TestAiohttpSender:
    @pytest.mark.anyio
    async def test_real_loopback_round_trip(self, conn_env: Any, loopback_server: str) -> None:
        conn_env(host=loopback_server, extra={"read_timeout": 0.3, "max_attempts": 2})
        hook = VexoraHook()
        async with hook.async_session(concurrency=4) as session:
            results = {
                r.trade_no: r async for r in session.stream_payout_statuses(["A", "HANG", "DROP", "GZIP"])
            }
        assert isinstance(results["A"], PayoutStatus)
        assert results["A"].raw["echo"] == MERCHANT
        assert isinstance(results["GZIP"], PayoutStatus)
        assert results["GZIP"].amount == Decimal("1.10")
        hang = results["HANG"]
        assert isinstance(hang, PayoutQueryError)
        assert "read timeout after 0.3s" in hang.message
        assert hang.attempts == 2
        drop = results["DROP"]
        assert isinstance(drop, PayoutQueryError)
        assert drop.error_type == "VexoraTransportError"

    @pytest.mark.anyio
    async def test_connection_refused(self, conn_env: Any) -> None:
        conn_env(host="http://127.0.0.1:9", extra={"max_attempts": 1})
        with pytest.raises(VexoraTransportError, match=r"connection refused by 127\.0\.0\.1:9"):
            await VexoraHook().aget_payout_status("T1")

    def test_sync_connection_refused(self, conn_env: Any) -> None:
        conn_env(host="http://127.0.0.1:9", extra={"max_attempts": 2})
        with pytest.raises(VexoraTransportError, match="connection refused") as exc:
            VexoraHook().get_payout_status("T1")
        assert exc.value.attempts == 2
        assert_no_secret(str(exc.value))


def _cert_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


def _httpx_tls_error() -> httpx.ConnectError:
    outer = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    outer.__cause__ = _cert_error()
    return outer


HTTPX_FAILURES: dict[str, tuple[Any, str]] = {
    "connect-timeout": (lambda: httpx.ConnectTimeout("t"), "connect_timeout"),
    "read-timeout": (lambda: httpx.ReadTimeout("t"), "read_timeout"),
    "write-timeout": (lambda: httpx.WriteTimeout("t"), "write_timeout"),
    "pool-timeout": (lambda: httpx.PoolTimeout("t"), "pool_timeout"),
    "proxy": (lambda: httpx.ProxyError("407 Proxy Authentication Required"), "proxy"),
    "refused": (lambda: httpx.ConnectError("[Errno 111] Connection refused"), "refused"),
    "tls": (_httpx_tls_error, "tls_verify"),
    "dns": (lambda: httpx.ConnectError("[Errno -2] Name or service not known"), "connect"),
    "closed": (lambda: httpx.RemoteProtocolError("peer closed"), "closed"),
    "reset": (lambda: httpx.ReadError("[Errno 104] Connection reset by peer"), "reset"),
    "read": (lambda: httpx.ReadError("bad"), "read"),
    "unsupported": (lambda: httpx.UnsupportedProtocol("ftp"), "unsupported"),
}


class TestHttpxFailure:
    @pytest.mark.parametrize("case", list(HTTPX_FAILURES))
    def test_kind(self, case: str) -> None:
        make, kind = HTTPX_FAILURES[case]
        assert httpx_failure(make()).kind == kind

    def test_proxy_status_and_certificate_reason(self) -> None:
        assert httpx_failure(httpx.ProxyError("407 Proxy Authentication Required")).status == 407
        failure = httpx_failure(_httpx_tls_error())
        assert failure.detail == "certificate verify failed: unable to get local issuer certificate"


class _Key:
    host, port, is_ssl, ssl, proxy, proxy_auth, proxy_headers_hash = "h", 443, True, True, None, None, None


def _connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(_Key(), os_error)  # type: ignore[arg-type]


AIOHTTP_FAILURES: dict[str, tuple[Any, str]] = {
    "tls": (lambda: aiohttp.ClientConnectorCertificateError(_Key(), _cert_error()), "tls_verify"),  # type: ignore[arg-type]
    "connect-timeout": (lambda: aiohttp.ConnectionTimeoutError("t"), "connect_timeout"),
    "read-timeout": (lambda: aiohttp.SocketTimeoutError("t"), "read_timeout"),
    "plain-timeout": (lambda: TimeoutError(), "read_timeout"),
    "refused": (
        lambda: aiohttp.ClientConnectorError(_Key(), ConnectionRefusedError(111, "refused")),
        "refused",
    ),  # type: ignore[arg-type]
    "dns": (lambda: aiohttp.ClientConnectorError(_Key(), OSError(-2, "Name not known")), "connect"),  # type: ignore[arg-type]
    "closed": (lambda: aiohttp.ServerDisconnectedError(), "closed"),
    "payload": (lambda: aiohttp.ClientPayloadError("cut"), "closed"),
    "reset": (lambda: aiohttp.ClientOSError(104, "Connection reset by peer"), "reset"),
    "read": (lambda: aiohttp.ClientOSError(5, "I/O error"), "read"),
}


class TestAiohttpFailure:
    @pytest.mark.parametrize("case", list(AIOHTTP_FAILURES))
    def test_kind(self, case: str) -> None:
        make, kind = AIOHTTP_FAILURES[case]
        assert aiohttp_failure(make()).kind == kind

    def test_proxy_refusal_keeps_the_status(self) -> None:
        info = aiohttp.RequestInfo(
            URL("http://h"), "CONNECT", CIMultiDictProxy(CIMultiDict()), URL("http://h")
        )
        failure = aiohttp_failure(aiohttp.ClientHttpProxyError(info, (), status=407, message="Auth"))
        assert (failure.kind, failure.status) == ("proxy", 407)
