from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from vexora_hook_support import (
    BAD_TRADE_NOS,
    MERCHANT,
    TRANSIENT_REPLIES,
    FakeClock,
    ScriptedGateway,
    assert_no_secret,
    envelope,
    hook_with,
    ok_status,
)

from vexora_provider.exceptions import VexoraError, VexoraInvalidTradeNoError
from vexora_provider.hooks._transport import AiohttpSender, HttpxAsyncSender
from vexora_provider.hooks.vexora import FetchStats, VexoraAsyncSession, VexoraHook
from vexora_provider.models import PayoutQueryError, PayoutState, PayoutStatus


class TestVexoraAsyncSession:
    @pytest.mark.anyio
    async def test_aget_config_uses_async_apis_only(self, hook: VexoraHook, mocker: Any) -> None:
        mocker.patch.object(VexoraHook, "get_connection", side_effect=AssertionError("sync lookup"))
        mocker.patch(
            "airflow.sdk.Connection.extra_dejson",
            new_callable=mocker.PropertyMock,
            side_effect=AssertionError("sync masking"),
        )
        config = await hook.aget_config()
        assert config.merchant_no == MERCHANT
        assert hook.config is config  # same cache slot
        assert await hook.aget_config() is config

    @pytest.mark.anyio
    async def test_aget_payout_status_and_balance(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.script["T1"] = [httpx.Response(502), ok_status("T1", "0000", amount="5")]
        status = await hook.aget_payout_status("T1")
        assert status.state is PayoutState.SUCCESS
        assert status.amount == Decimal(5)
        assert (await hook.aget_balance()).available_amount == Decimal("1.00")

    @pytest.mark.anyio
    @pytest.mark.parametrize("case", list(TRANSIENT_REPLIES))
    async def test_async_transient_exhausted(
        self, hook: VexoraHook, gateway: ScriptedGateway, caplog: pytest.LogCaptureFixture, case: str
    ) -> None:
        gateway.script["T1"] = [TRANSIENT_REPLIES[case]() for _ in range(10)]
        with pytest.raises(VexoraError) as exc:
            await hook.aget_payout_status("T1")
        assert exc.value.transient
        assert exc.value.attempts == 4
        assert_no_secret(str(exc.value), caplog.text, signatures=gateway.signatures())

    @pytest.mark.anyio
    @pytest.mark.parametrize("trade_no", BAD_TRADE_NOS)
    async def test_async_bad_trade_no(
        self, hook: VexoraHook, gateway: ScriptedGateway, trade_no: Any
    ) -> None:
        with pytest.raises(VexoraInvalidTradeNoError):
            await hook.aget_payout_status(trade_no)
        assert gateway.requests == []

    @pytest.mark.anyio
    async def test_session_rate_limit_shared_by_workers(
        self, conn_env: Any, gateway: ScriptedGateway, clock: FakeClock
    ) -> None:
        conn_env(extra={"requests_per_second": 10})
        hook = hook_with(gateway)
        results = [r async for r in hook.astream_payout_statuses([f"T{i}" for i in range(20)], concurrency=8)]
        assert len(results) == 20
        # 20 requests at 10/s from 8 workers: the slots span 1.9 s however the workers interleave.
        assert clock.now - 1000.0 == pytest.approx(1.9)

    @pytest.mark.anyio
    async def test_429_pauses_every_worker(
        self, hook: VexoraHook, gateway: ScriptedGateway, clock: FakeClock
    ) -> None:
        gateway.script["T0"] = [httpx.Response(429, headers={"Retry-After": "30"})]
        async with hook.async_session(concurrency=4) as session:
            results = [r async for r in session.stream_payout_statuses([f"T{i}" for i in range(8)])]
            assert session.stats.rate_limited == 1
        assert all(isinstance(r, PayoutStatus) for r in results)
        # Requests sent after the 429 all waited out the pause.
        assert clock.now >= 1030.0

    @pytest.mark.anyio
    @pytest.mark.parametrize("value", ["PO-1", b"PO-1", {"PO-1": 1}], ids=["str", "bytes", "dict"])
    async def test_stream_refuses_what_it_would_iterate_wrongly(
        self, hook: VexoraHook, gateway: ScriptedGateway, value: Any
    ) -> None:
        with pytest.raises(TypeError, match="pass a list"):
            [r async for r in hook.astream_payout_statuses(value)]
        assert gateway.requests == []

    @pytest.mark.anyio
    async def test_stream_each_trade_once(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.script["T3"] = [httpx.Response(404)]
        gateway.script["T4"] = [envelope("8000", "query failed")] * 4
        trade_nos = [f"T{i}" for i in range(50)] + ["", "x" * 40, "T7", " T8 "]
        stats = FetchStats()
        results = [r async for r in hook.astream_payout_statuses(trade_nos, concurrency=7, stats=stats)]
        # One result per distinct trade number: "T7" again and " T8 " (stripped) are repeats.
        assert sorted(r.trade_no for r in results) == sorted(trade_nos[:52])
        errors = {r.trade_no: r for r in results if isinstance(r, PayoutQueryError)}
        assert set(errors) == {"T3", "T4", "", "x" * 40}
        assert errors["T3"].error_type == "VexoraHTTPError"
        assert errors["T4"].attempts == 4
        assert errors[""].attempts == 0
        assert isinstance(errors["x" * 40].error, VexoraInvalidTradeNoError)
        assert stats.duplicates == 2
        assert stats.requested == 52
        assert stats.succeeded == 52 - 4
        assert stats.failed == 4
        # Invalid trade numbers never reached the gateway.
        assert gateway.calls_for("") == 0

    @pytest.mark.anyio
    async def test_stream_yields_in_completion_order(self, conn_env: Any) -> None:
        async def slow_first(request: httpx.Request) -> httpx.Response:
            trade_no = json.loads(request.content)["tradeNo"]
            await asyncio.sleep(0.05 if trade_no == "SLOW" else 0)
            return ok_status(trade_no)

        hook = VexoraHook(async_transport=httpx.MockTransport(slow_first))
        # "A" goes alone (the session's first answer), then the rest in parallel.
        order = [
            r.trade_no async for r in hook.astream_payout_statuses(["A", "SLOW", "B", "C"], concurrency=4)
        ]
        assert order[0] == "A"
        assert order[-1] == "SLOW"

    @pytest.mark.anyio
    async def test_stream_is_lazy_and_bounded(self, hook: VexoraHook) -> None:
        pulled = 0

        def trade_nos() -> Iterator[str]:
            nonlocal pulled
            for i in range(10_000):
                pulled += 1
                yield f"T{i}"

        seen = 0
        baseline = len(asyncio.all_tasks())
        async with hook.async_session(concurrency=5) as session:
            stream = session.stream_payout_statuses(trade_nos())
            async for _ in stream:
                seen += 1
                # Workers + the bounded results queue, never the whole input.
                assert pulled - seen <= 5 * 2 + 1
                assert len(asyncio.all_tasks()) <= baseline + 5
                if seen == 100:
                    break
            await stream.aclose()  # type: ignore[attr-defined]
            assert len(asyncio.all_tasks()) == baseline  # every worker was cancelled and awaited
        assert pulled < 200

    @pytest.mark.anyio
    async def test_session_exit_stops_abandoned_stream(self, hook: VexoraHook) -> None:
        baseline = len(asyncio.all_tasks())
        async with hook.async_session(concurrency=3) as session:
            async for _ in session.stream_payout_statuses(f"T{i}" for i in range(1000)):
                break  # no aclose(): the generator lingers until garbage collection
        assert len(asyncio.all_tasks()) == baseline

    @pytest.mark.anyio
    async def test_stream_async_iterable(self, hook: VexoraHook) -> None:
        async def trade_nos() -> AsyncIterator[str]:
            for i in range(30):
                yield f"T{i}"

        results = [r async for r in hook.astream_payout_statuses(trade_nos(), concurrency=4)]
        assert sorted(r.trade_no for r in results) == sorted(f"T{i}" for i in range(30))

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", ["sync", "async"])
    async def test_stream_source_error_propagates(self, hook: VexoraHook, kind: str) -> None:
        def broken() -> Iterator[str]:
            yield "T1"
            raise LookupError("source broke")

        async def abroken() -> AsyncIterator[str]:
            yield "T1"
            raise LookupError("source broke")

        source: Any = broken() if kind == "sync" else abroken()
        with pytest.raises(LookupError, match="source broke"):
            async for _ in hook.astream_payout_statuses(source, concurrency=2):
                pass

    @pytest.mark.anyio
    async def test_stream_unexpected_error_is_a_trade_error(self, conn_env: Any) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            if json.loads(request.content)["tradeNo"] == "BOOM":
                raise ZeroDivisionError("bug")
            return ok_status(json.loads(request.content)["tradeNo"])

        hook = VexoraHook(async_transport=httpx.MockTransport(handler))
        results = {r.trade_no: r async for r in hook.astream_payout_statuses(["A", "BOOM", "B"])}
        assert isinstance(results["BOOM"], PayoutQueryError)
        assert results["BOOM"].error_type == "VexoraTransportError"
        assert isinstance(results["A"], PayoutStatus)

    @pytest.mark.anyio
    async def test_session_is_one_client_closed_on_exit(self, hook: VexoraHook, mocker: Any) -> None:
        created = mocker.spy(httpx.AsyncClient, "__init__")
        async with hook.async_session(concurrency=3) as session:
            assert isinstance(session, VexoraAsyncSession)
            await session.get_payout_status("T1")
            await session.get_payout_status("T2")
            await session.get_balance()
            sender = session._runner._send
            assert isinstance(sender, HttpxAsyncSender)
            client = sender.client
        assert created.call_count == 1
        assert client.is_closed
        # The injected transport is borrowed, not closed: the hook can open another session.
        async with hook.async_session() as again:
            await again.get_payout_status("T3")

    @pytest.mark.anyio
    async def test_default_transport_is_aiohttp(self, conn_env: Any) -> None:
        async with VexoraHook().async_session(concurrency=3) as session:
            assert isinstance(session._runner._send, AiohttpSender)
