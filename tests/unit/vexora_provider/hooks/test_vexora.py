from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import aiohttp.web
import httpx
import pytest
from vexora_hook_support import MERCHANT, SECRET, FakeClock, ScriptedGateway, envelope, ok_status

from vexora_provider.exceptions import (
    VexoraAPIError,
    VexoraAuthError,
    VexoraConfigError,
    VexoraError,
    VexoraHTTPError,
    VexoraInvalidTradeNoError,
    VexoraResponseFormatError,
    VexoraTransportError,
)
from vexora_provider.hooks import _protocol, _retry
from vexora_provider.hooks._transport import AiohttpTransport
from vexora_provider.hooks.vexora import (
    FetchStats,
    VexoraAsyncSession,
    VexoraHook,
    validate_trade_no,
)
from vexora_provider.models import PayoutQueryError, PayoutState, PayoutStatus
from vexora_provider.signing import verify

HOOK_PATH = "vexora_provider.hooks.vexora.{}"
BAD_TRADE_NOS = ["", "   ", "x" * 33, "a\nb", "tab\there", "nul\x00", 12345, None]

TRANSIENT_REPLIES: dict[str, Any] = {
    "http-500": lambda: httpx.Response(500, text="oops"),
    "http-502": lambda: httpx.Response(502, text="<html>bad gateway</html>"),
    "http-503": lambda: httpx.Response(503),
    "http-429": lambda: httpx.Response(429, text="Too Many Requests"),
    "code-5000": lambda: envelope("5000", "system exception"),
    "code-8000": lambda: envelope("8000", "request failed"),
    "read-timeout": lambda: httpx.ReadTimeout("timed out"),
    "connect-timeout": lambda: httpx.ConnectTimeout("timed out"),
    "connect-refused": lambda: httpx.ConnectError("[Errno 111] Connection refused"),
    "reset": lambda: httpx.ReadError("[Errno 104] Connection reset by peer"),
    "truncated": lambda: httpx.RemoteProtocolError(
        "peer closed connection without sending complete message body"
    ),
    "not-json": lambda: httpx.Response(200, text="<html>proxy error</html>"),
    "no-code": lambda: httpx.Response(200, json={"msg": "what"}),
}
TRANSIENT_TYPES = {
    "http": VexoraHTTPError,
    "code": VexoraAPIError,
    "read": VexoraTransportError,
    "connect": VexoraTransportError,
    "reset": VexoraTransportError,
    "truncated": VexoraTransportError,
    "not": VexoraResponseFormatError,
    "no": VexoraResponseFormatError,
}

PERMANENT_REPLIES: dict[str, tuple[Any, type[VexoraError]]] = {
    "http-400": (lambda: httpx.Response(400, text="bad"), VexoraHTTPError),
    "http-401": (lambda: httpx.Response(401), VexoraHTTPError),
    "http-403": (lambda: httpx.Response(403), VexoraHTTPError),
    "http-404": (lambda: httpx.Response(404), VexoraHTTPError),
    "http-302": (lambda: httpx.Response(302, headers={"location": "/elsewhere"}), VexoraHTTPError),
    "code-undocumented": (lambda: envelope("1234", "undocumented"), VexoraAPIError),
    "code-9999": (lambda: envelope("9999", "sign error"), VexoraAPIError),
    "bad-amount": (lambda: ok_status("T1", amount="lots"), VexoraResponseFormatError),
    "no-status": (lambda: envelope("0000", "success", {"tradeNo": "T1"}), VexoraResponseFormatError),
    "data-null": (lambda: envelope("0000", "success", None), VexoraResponseFormatError),
    "other-trade": (lambda: ok_status("T2"), VexoraResponseFormatError),
    "bad-success-time": (lambda: ok_status("T1", successTime="yesterday"), VexoraResponseFormatError),
}

# The regional shapes of ``data`` from vexora-api.md section 3.
REGIONAL_DATA: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "argentina-amount-string": (
        {
            "tradeNo": "T1",
            "platFormTradeNo": "P1",
            "status": "0000",
            "message": "ok",
            "amount": "300.00",
            "successTime": "2024-10-11 10:22:00",
        },
        {"amount": Decimal("300.00"), "state": PayoutState.SUCCESS},
    ),
    "vietnam-amount-number": (
        {
            "tradeNo": "T1",
            "platFormTradeNo": "P1",
            "status": "0015",
            "message": "in processing",
            "amount": 3.0000,
        },
        {"amount": Decimal("3.0000"), "state": PayoutState.PENDING, "success_time": None},
    ),
    "indonesia-order-pay": (
        {
            "tradeNo": "T1",
            "platFormTradeNo": "P1",
            "status": "0001",
            "orderAmount": "100.00",
            "payAmount": 60,
        },
        {"order_amount": Decimal("100.00"), "pay_amount": Decimal(60), "state": PayoutState.PARTIAL},
    ),
    "korea-no-tradeNo": (
        {"platFormTradeNo": "P1", "status": "00029", "message": "REJECTED_TRANSACTION"},
        {"state": PayoutState.FAILED, "message": "REJECTED_TRANSACTION"},
    ),
    "unknown-code-extra-fields": (
        {"tradeNo": "T1", "status": "0042", "bankCode": "014", "fee": 1.5},
        {"state": PayoutState.UNKNOWN, "status_code": "0042"},
    ),
}


def _hook_with(gateway: ScriptedGateway, conn_id: str = "vexora_default") -> VexoraHook:
    transport = httpx.MockTransport(gateway)
    return VexoraHook(conn_id, transport=transport, async_transport=transport)


def _assert_no_secret(*texts: str, signatures: list[str] = ()) -> None:  # type: ignore[assignment]
    # Say which text leaked, never what: a plain ``assert SECRET not in text`` prints the secret.
    for number, text in enumerate(texts):
        leaked = SECRET in text or any(signature in text for signature in signatures)
        assert not leaked, f"text #{number} carries the app secret or a request signature"


class TestValidateTradeNo:
    @pytest.mark.parametrize("trade_no", ["T1", "x" * 32, "ÄÖ-üñ_中文", "a b"])
    def test_accepts(self, trade_no: str) -> None:
        assert validate_trade_no(trade_no) == trade_no

    @pytest.mark.parametrize("trade_no", BAD_TRADE_NOS)
    def test_rejects(self, trade_no: Any) -> None:
        with pytest.raises(VexoraInvalidTradeNoError) as exc:
            validate_trade_no(trade_no)
        assert exc.value.attempts == 0
        assert not exc.value.transient
        assert isinstance(exc.value, ValueError)


class TestFetchStats:
    def test_as_dict_is_plain_numbers(self) -> None:
        stats = FetchStats(requested=3, succeeded=2, failed=1)
        data = stats.as_dict()
        assert data["requested"] == 3
        assert data["failed"] == 1
        assert "elapsed_s" in data
        assert all(type(v) in (int, float) for v in data.values())


class TestVexoraHook:
    def test_class_attributes(self) -> None:
        assert VexoraHook.conn_name_attr == "vexora_conn_id"
        assert VexoraHook.default_conn_name == "vexora_default"
        assert VexoraHook.conn_type == "vexora"
        assert VexoraHook.hook_name == "Vexora"

    def test_init_does_no_lookup(self, mocker: Any) -> None:
        lookup = mocker.patch.object(VexoraHook, "get_connection")
        VexoraHook("nowhere")
        lookup.assert_not_called()

    def test_config_and_reprs_hide_secret(self, hook: VexoraHook) -> None:
        config = hook.config
        assert config.merchant_no == MERCHANT
        assert config.secret == SECRET
        _assert_no_secret(repr(config), repr(hook), str(hook.__dict__.get("stats")))

    def test_uri_form_folds_port_and_schema(self, conn_env: Any, gateway: ScriptedGateway) -> None:
        conn_env("vexora_uri", host="http://127.0.0.1", port=8080, schema="korea")
        config = _hook_with(gateway, "vexora_uri").config
        assert config.base_url == "http://127.0.0.1:8080/korea"
        assert config.timezone is not None
        assert config.timezone.key == "Asia/Seoul"

    def test_bad_connection_is_config_error(self, conn_env: Any, gateway: ScriptedGateway) -> None:
        conn_env("broken", password=None)
        with pytest.raises(VexoraConfigError, match="app secret"):
            _hook_with(gateway, "broken").get_payout_status("T1")
        assert gateway.requests == []

    def test_request_shape(self, conn_env: Any, gateway: ScriptedGateway) -> None:
        conn_env(extra={"read_timeout": 3, "max_attempts": 2, "requests_per_second": 50, "timezone": "UTC"})
        _hook_with(gateway).get_payout_status("T1")
        (request,) = gateway.requests
        assert request.method == "POST"
        assert str(request.url) == "https://sandbox-api.vexora.com/nigeria/v1/vexora/queryPayOutResult"
        assert request.headers["merchantNo"] == MERCHANT
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        assert set(body) == {"tradeNo", "timestamp", "sign"}
        assert all(isinstance(v, str) for v in body.values())
        assert verify(body, SECRET, body["sign"])
        # No extra ever becomes a header (the HttpHook pitfall).
        for key in ("read_timeout", "max_attempts", "requests_per_second", "timezone"):
            assert key not in {k.lower() for k in request.headers}
        _assert_no_secret(*request.headers.values())

    @pytest.mark.parametrize("region", list(REGIONAL_DATA))
    def test_regional_variants(self, hook: VexoraHook, gateway: ScriptedGateway, region: str) -> None:
        data, expected = REGIONAL_DATA[region]
        gateway.script["T1"] = [envelope("0000", "success", data)]
        status = hook.get_payout_status("T1")
        assert isinstance(status, PayoutStatus)
        assert status.trade_no == "T1"
        for name, value in expected.items():
            assert getattr(status, name) == value
        for amount in (status.amount, status.order_amount, status.pay_amount):
            assert amount is None or isinstance(amount, Decimal)
        assert dict(status.raw).keys() == data.keys()

    def test_success_time_is_aware_in_region_zone(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.script["T1"] = [ok_status("T1", "0000", successTime="2024-10-11 10:22:00")]
        when = hook.get_payout_status("T1").success_time
        assert when is not None
        assert when.utcoffset() == timedelta(hours=1)  # Africa/Lagos

    @pytest.mark.parametrize("trade_no", BAD_TRADE_NOS)
    def test_bad_trade_no_sends_nothing(
        self, hook: VexoraHook, gateway: ScriptedGateway, trade_no: Any
    ) -> None:
        with pytest.raises(VexoraInvalidTradeNoError):
            hook.get_payout_status(trade_no)
        assert gateway.requests == []

    @pytest.mark.parametrize("case", list(TRANSIENT_REPLIES))
    def test_transient_then_success(
        self, hook: VexoraHook, gateway: ScriptedGateway, clock: FakeClock, case: str
    ) -> None:
        gateway.script["T1"] = [TRANSIENT_REPLIES[case]()]
        status = hook.get_payout_status("T1")
        assert status.state is PayoutState.PENDING
        assert gateway.calls_for("T1") == 2
        assert hook.stats.retries == 1
        assert len(clock.sleeps) == 1
        # Every try is signed afresh; signatures verify.
        for request in gateway.requests:
            body = json.loads(request.content)
            assert verify(body, SECRET, body["sign"])

    @pytest.mark.anyio
    @pytest.mark.parametrize("mode", ["sync", "async"])
    async def test_each_try_has_a_fresh_timestamp(
        self, hook: VexoraHook, gateway: ScriptedGateway, monkeypatch: pytest.MonkeyPatch, mode: str
    ) -> None:
        ticks = iter(range(1728613320000, 1728613330000, 1000))
        monkeypatch.setattr(_protocol, "timestamp_ms", lambda: str(next(ticks)))
        gateway.script["T1"] = [httpx.Response(503), httpx.Response(503)]
        if mode == "sync":
            hook.get_payout_status("T1")
        else:
            await hook.aget_payout_status("T1")
        bodies = [json.loads(r.content) for r in gateway.requests]
        assert [b["timestamp"] for b in bodies] == ["1728613320000", "1728613321000", "1728613322000"]
        assert len({b["sign"] for b in bodies}) == 3
        assert all(verify(b, SECRET, b["sign"]) for b in bodies)

    @pytest.mark.parametrize("case", list(TRANSIENT_REPLIES))
    def test_transient_exhausted(
        self,
        hook: VexoraHook,
        gateway: ScriptedGateway,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
        case: str,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        gateway.script["T1"] = [TRANSIENT_REPLIES[case]() for _ in range(10)]
        with pytest.raises(VexoraError) as exc:
            hook.get_payout_status("T1")
        error = exc.value
        assert isinstance(error, TRANSIENT_TYPES[case.split("-")[0]])
        assert error.transient
        assert error.trade_no == "T1"
        assert error.attempts == hook.config.max_attempts == 4
        assert gateway.calls_for("T1") == 4
        assert "T1" in str(error)
        # Full jitter: each wait within [0, min(cap, base * 2**n)].
        for n, waited in enumerate(clock.sleeps):
            assert 0 <= waited <= min(_retry.BACKOFF_CAP, _retry.BACKOFF_BASE * 2**n) or case == "http-429"
        _assert_no_secret(str(error), repr(error), caplog.text, signatures=gateway.signatures())
        assert hook.stats.failed == 1

    @pytest.mark.parametrize("case", list(PERMANENT_REPLIES))
    def test_permanent_fails_at_once(
        self, hook: VexoraHook, gateway: ScriptedGateway, caplog: pytest.LogCaptureFixture, case: str
    ) -> None:
        make, error_type = PERMANENT_REPLIES[case]
        gateway.script["T1"] = [make() for _ in range(3)]
        with pytest.raises(error_type) as exc:
            hook.get_payout_status("T1")
        assert gateway.calls_for("T1") == 1
        assert exc.value.attempts == 1
        assert not exc.value.transient
        assert exc.value.trade_no == "T1"
        _assert_no_secret(str(exc.value), caplog.text, signatures=gateway.signatures())

    def test_http_error_fields(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.script["T1"] = [httpx.Response(404)]
        with pytest.raises(VexoraHTTPError) as exc:
            hook.get_payout_status("T1")
        assert exc.value.http_status == 404
        assert exc.value.retry_after is None

    @pytest.mark.parametrize(("code", "transient"), [("5000", True), ("8000", True), ("7777", False)])
    def test_api_error_fields(
        self, hook: VexoraHook, gateway: ScriptedGateway, code: str, transient: bool
    ) -> None:
        gateway.script["T1"] = [envelope(code, "nope")] * 5
        with pytest.raises(VexoraAPIError) as exc:
            hook.get_payout_status("T1")
        assert exc.value.code == code
        assert exc.value.msg == "nope"
        assert exc.value.transient is transient
        assert code in str(exc.value)

    def test_transport_error_messages(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.script["T1"] = [httpx.ReadTimeout("timed out")] * 4
        with pytest.raises(VexoraTransportError) as exc:
            hook.get_payout_status("T1")
        assert exc.value.reason == "read timeout after 10s from sandbox-api.vexora.com"
        assert isinstance(exc.value.__cause__, httpx.ReadTimeout)
        gateway.script["T2"] = [httpx.ConnectError("[Errno 111] Connection refused")] * 4
        with pytest.raises(VexoraTransportError, match=r"connection refused by sandbox-api\.vexora\.com"):
            hook.get_payout_status("T2")

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("7", 7.0),
            ("1.5", 1.5),
            ("3600", _retry.RETRY_AFTER_CAP),
            ("-4", 0.0),
        ],
    )
    def test_retry_after_seconds(
        self, hook: VexoraHook, gateway: ScriptedGateway, clock: FakeClock, header: str, expected: float
    ) -> None:
        gateway.script["T1"] = [httpx.Response(429, headers={"Retry-After": header})]
        hook.get_payout_status("T1")
        assert clock.sleeps == [pytest.approx(expected)]
        assert hook.stats.rate_limited == 1

    def test_retry_after_http_date(
        self, hook: VexoraHook, gateway: ScriptedGateway, clock: FakeClock
    ) -> None:
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
        gateway.script["T1"] = [httpx.Response(503, headers={"Retry-After": when})]
        hook.get_payout_status("T1")
        assert 15 <= clock.sleeps[0] <= 20

    def test_rate_limit(self, conn_env: Any, gateway: ScriptedGateway, clock: FakeClock) -> None:
        conn_env(extra={"requests_per_second": 4})
        hook = _hook_with(gateway)
        for i in range(5):
            hook.get_payout_status(f"T{i}")
        # Slots at 0, .25, .5, .75, 1.0 s: four waits of a quarter second.
        assert clock.sleeps == [pytest.approx(0.25)] * 4
        assert len(gateway.requests) == 5

    def test_429_pauses_the_whole_hook(
        self, hook: VexoraHook, gateway: ScriptedGateway, clock: FakeClock
    ) -> None:
        gateway.script["T1"] = [httpx.Response(429, headers={"Retry-After": "5"})]
        hook.get_payout_status("T1")
        clock.sleeps.clear()
        hook.get_payout_status("T2")
        assert clock.sleeps == []  # the pause was already waited out by T1's retry
        hook._limiter.pause(3)
        hook.get_payout_status("T3")
        assert clock.sleeps == [pytest.approx(3)]

    def test_get_balance(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.balance = [
            envelope(
                "0000",
                "success",
                {"availableAmount": 12.50, "freezeAmount": "0", "unsettledAmount": None, "currency": "NGN"},
            )
        ]
        balance = hook.get_balance()
        assert balance.available_amount == Decimal("12.50")
        assert balance.freeze_amount == Decimal(0)
        assert balance.unsettled_amount is None
        body = json.loads(gateway.requests[0].content)
        assert set(body) == {"timestamp", "sign"}
        assert gateway.requests[0].url.path == "/nigeria/v1/vexora/queryBalance"

    def test_balance_8000_is_auth_error(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.balance = [envelope("8000", "request failed")] * 3
        with pytest.raises(VexoraAuthError) as exc:
            hook.get_balance()
        assert exc.value.code == "8000"
        assert len(gateway.requests) == 1
        _assert_no_secret(str(exc.value))

    def test_balance_5000_is_retried(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.balance = [envelope("5000", "system")]
        assert hook.get_balance().available_amount == Decimal("1.00")
        assert len(gateway.requests) == 2


class TestTestConnection:
    def test_success(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        ok, message = hook.test_connection()
        assert ok
        assert MERCHANT in message
        assert [r.url.path for r in gateway.requests] == ["/nigeria/v1/vexora/queryBalance"]

    def test_only_host_login_password(
        self, monkeypatch: pytest.MonkeyPatch, gateway: ScriptedGateway
    ) -> None:
        # A UI test runs under a random id with nothing but the three fields.
        monkeypatch.setenv(
            "AIRFLOW_CONN_RANDOM_8F3A",
            json.dumps(
                {
                    "conn_type": "vexora",
                    "host": "sandbox-api.vexora.com/korea",
                    "login": MERCHANT,
                    "password": SECRET,
                }
            ),
        )
        ok, _ = _hook_with(gateway, "random_8f3a").test_connection()
        assert ok
        assert str(gateway.requests[0].url).startswith("https://sandbox-api.vexora.com/korea/")

    @pytest.mark.parametrize(
        ("reply", "expected"),
        [
            (envelope("8000", "request failed"), "VexoraAuthError"),
            (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused"),
            (httpx.ReadTimeout("timed out"), "read timeout after 10s"),
            (httpx.Response(500), "HTTP 500"),
            (httpx.Response(200, text="nope"), "malformed response"),
            (RuntimeError(f"surprise {SECRET}"), "RuntimeError"),
        ],
    )
    def test_failure_never_raises(
        self,
        hook: VexoraHook,
        gateway: ScriptedGateway,
        caplog: pytest.LogCaptureFixture,
        reply: Any,
        expected: str,
    ) -> None:
        gateway.balance = [reply] * 5
        ok, message = hook.test_connection()
        assert not ok
        assert expected in message
        assert len(gateway.requests) == 1  # one bounded try, no backoff
        _assert_no_secret(message, caplog.text, signatures=gateway.signatures())

    def test_bad_config(self, conn_env: Any, gateway: ScriptedGateway) -> None:
        conn_env("nohost", host=None)
        ok, message = _hook_with(gateway, "nohost").test_connection()
        assert not ok
        assert "VexoraConfigError" in message

    def test_missing_connection(self, gateway: ScriptedGateway) -> None:
        ok, message = _hook_with(gateway, "does_not_exist").test_connection()
        assert not ok
        assert "does_not_exist" in message

    def test_timeout_is_capped(self, conn_env: Any, gateway: ScriptedGateway, mocker: Any) -> None:
        conn_env(extra={"read_timeout": 120, "connect_timeout": 60})
        hook = _hook_with(gateway)
        spy = mocker.spy(httpx.Client, "__init__")
        hook.test_connection()
        timeout = spy.call_args.kwargs["timeout"]
        assert timeout.read <= 10
        assert timeout.connect <= 10


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
        _assert_no_secret(str(exc.value), caplog.text, signatures=gateway.signatures())

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
        hook = _hook_with(gateway)
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
    async def test_stream_each_trade_once(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.script["T3"] = [httpx.Response(404)]
        gateway.script["T4"] = [envelope("8000", "query failed")] * 4
        trade_nos = [f"T{i}" for i in range(50)] + ["", "x" * 40, "T7"]
        stats = FetchStats()
        results = [r async for r in hook.astream_payout_statuses(trade_nos, concurrency=7, stats=stats)]
        assert sorted(r.trade_no for r in results) == sorted(trade_nos)
        errors = {r.trade_no: r for r in results if isinstance(r, PayoutQueryError)}
        assert set(errors) == {"T3", "T4", "", "x" * 40}
        assert errors["T3"].error_type == "VexoraHTTPError"
        assert errors["T4"].attempts == 4
        assert errors[""].attempts == 0
        assert isinstance(errors["x" * 40].error, VexoraInvalidTradeNoError)
        assert stats.requested == len(trade_nos)
        assert stats.succeeded == len(trade_nos) - 4
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
        order = [
            r.trade_no async for r in hook.astream_payout_statuses(["SLOW", "A", "B", "C"], concurrency=4)
        ]
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
            client = session.client
        assert created.call_count == 1
        assert client.is_closed
        # The injected transport is borrowed, not closed: the hook can open another session.
        async with hook.async_session() as again:
            await again.get_payout_status("T3")

    @pytest.mark.anyio
    async def test_default_transport_is_aiohttp(self, conn_env: Any) -> None:
        async with VexoraHook().async_session(concurrency=3) as session:
            assert isinstance(session._transport, AiohttpTransport)


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
        _assert_no_secret(str(exc.value))


class TestBackoffDelay:
    @pytest.mark.parametrize(
        ("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (20, 30.0)]
    )
    def test_full_jitter_ceiling(self, monkeypatch: pytest.MonkeyPatch, attempt: int, ceiling: float) -> None:
        bounds: list[tuple[float, float]] = []

        def uniform(low: float, high: float) -> float:
            bounds.append((low, high))
            return high

        monkeypatch.setattr(_retry, "uniform", uniform)
        assert _retry.backoff_delay(attempt) == ceiling
        assert bounds == [(0.0, ceiling)]


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, None),
            ("", None),
            ("soon", None),
            ("nan", None),
            ("0", 0.0),
            ("2.5", 2.5),
            ("86400", _retry.RETRY_AFTER_CAP),
            ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: go now
            ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: refuse to guess
        ],
    )
    def test_values(self, value: str | None, expected: float | None) -> None:
        assert _retry.parse_retry_after(value) == expected


class TestAsyncRateLimiter:
    @pytest.mark.anyio
    async def test_unlimited_never_waits(self, clock: FakeClock) -> None:
        limiter = _retry.AsyncRateLimiter(None)
        for _ in range(100):
            await limiter.acquire()
        assert clock.sleeps == []

    @pytest.mark.anyio
    async def test_slots_are_spaced(self, clock: FakeClock) -> None:
        limiter = _retry.AsyncRateLimiter(5)
        await asyncio.gather(*(limiter.acquire() for _ in range(4)))
        # Four slots at 5/s: the last one starts 0.6 s after the first (the fake clock is shared,
        # so each sleep moves "now" for everyone).
        assert clock.now == pytest.approx(1000.6)
        assert len(clock.sleeps) == 3

    @pytest.mark.anyio
    async def test_pause_holds_reserved_slots_too(self, clock: FakeClock) -> None:
        limiter = _retry.AsyncRateLimiter(10)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())  # reserves the slot at +0.1 s
        await asyncio.sleep(0)
        limiter.pause(5)
        await waiter
        assert clock.now >= 1005.0


class TestRateLimiter:
    def test_pause_then_rate(self, clock: FakeClock) -> None:
        limiter = _retry.RateLimiter(2)
        limiter.pause(3)
        limiter.acquire()
        limiter.acquire()
        assert clock.sleeps == [pytest.approx(3.0), pytest.approx(0.5)]
