"""VexoraHook against the simulator on a real loopback socket: every region, every fault.

Nothing is mocked below the hook: the connection comes from ``AIRFLOW_CONN_VEXORA_DEFAULT``, the
sync path uses httpx's own transport and the async path the aiohttp-backed one, and the simulator
checks every signature. Backoff sleeps are shortened (not removed) so retries stay real but quick.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vexora_provider.exceptions import (
    VexoraAPIError,
    VexoraAuthError,
    VexoraError,
    VexoraHTTPError,
    VexoraResponseFormatError,
    VexoraTransportError,
)
from vexora_provider.hooks import _retry
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutQueryError, PayoutState, PayoutStatus
from vexora_provider.testing import REGION_VARIANTS, VexoraSimulator
from vexora_provider.testing.server import SimulatorServer

pytestmark = pytest.mark.integration

FAST_RETRY = {"max_attempts": 3, "connect_timeout": 2, "read_timeout": 1}


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with VexoraSimulator(seed=21) as sim, sim.serve() as server:
        yield server


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real sleeps, 100x shorter: retries still cross the event loop and the socket.
    monkeypatch.setattr(_retry, "sleep", lambda s: __import__("time").sleep(s / 100))
    real_asleep = asyncio.sleep
    monkeypatch.setattr(_retry, "asleep", lambda s: real_asleep(s / 100))


def connect(
    server: SimulatorServer, monkeypatch: pytest.MonkeyPatch, region: str = "nigeria", **extra: Any
) -> VexoraHook:
    monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", server.airflow_connection(region, **extra))
    return VexoraHook()


def both_paths(hook: VexoraHook, trade_no: str) -> tuple[PayoutStatus, PayoutStatus]:
    return hook.get_payout_status(trade_no), asyncio.run(hook.aget_payout_status(trade_no))


class TestVexoraHookOverLoopback:
    @pytest.mark.parametrize("region", sorted(REGION_VARIANTS))
    def test_every_region_variant(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch, region: str
    ) -> None:
        variant = REGION_VARIANTS[region]
        server.sim.add_payout("T-" + region, "partial", amount="300.00", region=region)
        hook = connect(server, monkeypatch, region)

        sync, async_ = both_paths(hook, "T-" + region)

        assert sync == async_
        assert sync.state is PayoutState.PARTIAL
        assert sync.status_code == "0001"
        amounts = [sync.amount, sync.order_amount, sync.pay_amount]
        assert all(a is None or isinstance(a, Decimal) for a in amounts)
        if variant.amount_fields == "amount":
            assert sync.amount is not None
            assert sync.amount < Decimal("300")
            assert sync.order_amount is None
            assert sync.pay_amount is None
        else:
            assert sync.order_amount == Decimal("300")
            assert sync.pay_amount is not None
            assert sync.pay_amount < sync.order_amount
            assert sync.amount is None
        if variant.success_time:
            assert sync.success_time is not None
            assert sync.success_time.tzinfo == ZoneInfo(variant.timezone)
        else:
            assert sync.success_time is None
        assert ("channelCode" in sync.raw) is variant.extra_field

    def test_pending_then_final_lifecycle(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        server.sim.add_payout("LIFE", "failed", pending_polls=2)
        hook = connect(server, monkeypatch)

        states = [hook.get_payout_status("LIFE").state for _ in range(3)]

        assert states == [PayoutState.PENDING, PayoutState.PENDING, PayoutState.FAILED]

    @pytest.mark.parametrize(
        "kind", ["http_500", "http_502", "http_503", "http_429", "code_5000", "code_8000",
                 "malformed_json", "truncated", "reset"],
    )  # fmt: skip
    def test_transient_fault_is_retried_on_both_paths(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch, kind: str
    ) -> None:
        server.sim.add_payout("S", "success")
        server.sim.add_payout("A", "success")
        server.sim.add_fault(kind, "queryPayOutResult", trade_no="S", nth=(1,), retry_after=1)
        server.sim.add_fault(kind, "queryPayOutResult", trade_no="A", nth=(1,), retry_after=1)
        hook = connect(server, monkeypatch, **FAST_RETRY)

        assert hook.get_payout_status("S").state is PayoutState.SUCCESS
        assert asyncio.run(hook.aget_payout_status("A")).state is PayoutState.SUCCESS
        assert server.sim.calls("S") == server.sim.calls("A") == 2

    @pytest.mark.parametrize(
        ("kind", "error", "fact"),
        [
            ("http_503", VexoraHTTPError, ("http_status", 503)),
            ("code_5000", VexoraAPIError, ("code", "5000")),
            ("code_8000", VexoraAPIError, ("code", "8000")),
            ("malformed_json", VexoraResponseFormatError, None),
            ("reset", VexoraTransportError, None),
            ("hang", VexoraTransportError, None),
        ],
    )
    def test_persistent_fault_is_a_typed_query_error_never_a_payout_state(
        self,
        server: SimulatorServer,
        monkeypatch: pytest.MonkeyPatch,
        kind: str,
        error: type[VexoraError],
        fact: tuple[str, object] | None,
    ) -> None:
        server.sim.add_payout("F", "success")
        server.sim.add_fault(kind, "queryPayOutResult", trade_no="F", hang_seconds=5)
        hook = connect(server, monkeypatch, **FAST_RETRY)

        with pytest.raises(error) as raised:
            hook.get_payout_status("F")

        assert raised.value.trade_no == "F"
        assert raised.value.attempts == 3
        assert "'F'" in str(raised.value)
        if fact:
            assert getattr(raised.value, fact[0]) == fact[1]
        leaked = server.sim.secret in str(raised.value)
        assert not leaked, "the app secret is in the error message"  # never print the secret itself
        assert server.sim.payout("F").polls == 0  # faulted calls never advanced the lifecycle

    def test_bulk_stream_yields_every_trade_once(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        made = server.sim.create_payouts(300, {"success": 0.7, "failed": 0.2, "pending": 0.1})
        server.sim.add_fault("http_503", "queryPayOutResult", probability=0.2, nth=(1,))
        server.sim.add_fault("code_8000", "queryPayOutResult", trade_no=made[0])
        hook = connect(server, monkeypatch, **FAST_RETRY)
        asked = [*made, "NOT-A-TRADE", "bad\ttrade"]

        async def collect() -> list[PayoutStatus | PayoutQueryError]:
            return [r async for r in hook.astream_payout_statuses(asked, concurrency=16)]

        results = asyncio.run(collect())

        assert sorted(r.trade_no for r in results) == sorted(asked)
        errors = {r.trade_no: r for r in results if isinstance(r, PayoutQueryError)}
        assert set(errors) == {made[0], "NOT-A-TRADE", "bad\ttrade"}
        assert errors["bad\ttrade"].attempts == 0  # refused before any request
        statuses = [r for r in results if isinstance(r, PayoutStatus)]
        truth = {t: server.sim.payout(t).status for t in made[1:]}
        assert {s.trade_no: s.status_code for s in statuses} == truth

    def test_balance_and_connection_test(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hook = connect(server, monkeypatch)

        balance = hook.get_balance()
        ok, message = hook.test_connection()

        assert isinstance(balance.available_amount, Decimal)
        assert ok, message

    def test_wrong_secret_is_an_auth_error_on_balance(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        conn = json.loads(server.airflow_connection("nigeria"))
        conn["password"] = "not-the-secret-" + "x" * 17
        monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", json.dumps(conn))
        hook = VexoraHook()

        with pytest.raises(VexoraAuthError) as raised:
            hook.get_balance()
        ok, message = hook.test_connection()

        assert raised.value.code == "8000"
        assert not ok
        leaked = conn["password"] in message
        assert not leaked, "the app secret is in the connection test message"
        assert server.sim.stats()["requests"]["queryBalance"] == 2  # auth errors are not retried

    def test_wrong_secret_fails_fast_on_every_status_path(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        conn = json.loads(server.airflow_connection("nigeria", **FAST_RETRY))
        conn["password"] = "not-the-secret-" + "x" * 17
        monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", json.dumps(conn))
        server.sim.create_payouts(200, {"success": 1.0})
        hook = VexoraHook()

        def sent() -> tuple[int, int]:
            requests = server.sim.stats()["requests"]
            return requests.get("queryPayOutResult", 0), requests.get("queryBalance", 0)

        with pytest.raises(VexoraAuthError) as raised:
            hook.get_payout_status("W-1")
        # One status query answered 8000, one queryBalance check answered 8000: no retries.
        assert sent() == (1, 1)
        assert raised.value.code == "8000"
        assert raised.value.trade_no == "W-1"
        assert "merchant number (login)" in str(raised.value)
        assert "app secret (password)" in str(raised.value)
        with pytest.raises(VexoraAuthError):
            hook.get_payout_status("W-2")
        assert sent() == (1, 1)  # known now: later calls fail without a request

        async def stream() -> list[PayoutStatus | PayoutQueryError]:
            trades = [f"W-{i}" for i in range(200)]
            return [r async for r in hook.astream_payout_statuses(trades, concurrency=32)]

        with pytest.raises(VexoraAuthError):
            asyncio.run(stream())
        # A new session finds out again, with one query and one check, not one per worker.
        assert sent() == (2, 2)
        leaked = conn["password"] in str(raised.value)
        assert not leaked, "the app secret is in the error message"

    def test_order_not_exist_is_still_a_retried_query_error(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hook = connect(server, monkeypatch, **FAST_RETRY)

        with pytest.raises(VexoraAPIError) as raised:
            hook.get_payout_status("NOT-CREATED")
        with pytest.raises(VexoraAPIError):
            hook.get_payout_status("NOT-CREATED-EITHER")

        assert raised.value.code == "8000"
        assert raised.value.attempts == 3
        assert raised.value.transient
        # The credentials were checked once (fine), so the second unknown trade asks no more.
        assert server.sim.stats()["requests"]["queryBalance"] == 1
        assert server.sim.calls("NOT-CREATED") == server.sim.calls("NOT-CREATED-EITHER") == 3
