from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp.web
import pytest
from vexora_hook_support import MERCHANT, assert_no_secret

from vexora_provider.exceptions import VexoraTransportError
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


class TestAiohttpTransport:
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
