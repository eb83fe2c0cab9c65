from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from vexora_hook_support import (
    BAD_TRADE_NOS,
    BASE_URL,
    MERCHANT,
    SECRET,
    TRANSIENT_REPLIES,
    FakeClock,
    ScriptedGateway,
    assert_no_secret,
    envelope,
    hook_with,
    ok_status,
)

from tests.unit.vexora_provider.test_config import BAD_CONNECTIONS
from vexora_provider.exceptions import (
    Permanence,
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
from vexora_provider.hooks._driver import RetryRule
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutState, PayoutStatus
from vexora_provider.signing import verify

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

# The regional shapes of ``data`` Vexora documents.
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
        assert_no_secret(repr(config), repr(hook), str(hook.__dict__.get("stats")))

    def test_uri_form_folds_port_and_schema(self, conn_env: Any, gateway: ScriptedGateway) -> None:
        conn_env("vexora_uri", host="http://127.0.0.1", port=8080, schema="korea")
        config = hook_with(gateway, "vexora_uri").config
        assert config.base_url == "http://127.0.0.1:8080/korea"
        assert config.timezone is not None
        assert config.timezone.key == "Asia/Seoul"

    def test_bad_connection_is_config_error(self, conn_env: Any, gateway: ScriptedGateway) -> None:
        conn_env("broken", password=None)
        with pytest.raises(VexoraConfigError, match="app secret"):
            hook_with(gateway, "broken").get_payout_status("T1")
        assert gateway.requests == []

    def test_request_shape(self, conn_env: Any, gateway: ScriptedGateway) -> None:
        conn_env(extra={"read_timeout": 3, "max_attempts": 2, "requests_per_second": 50, "timezone": "UTC"})
        hook_with(gateway).get_payout_status("T1")
        (request,) = gateway.requests
        assert request.method == "POST"
        assert str(request.url) == "https://sandbox-api.vexora.com/nigeria/v1/vexora/queryPayOutResult"
        assert request.headers["merchantNo"] == MERCHANT
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        assert set(body) == {"tradeNo", "timestamp", "sign"}
        assert all(isinstance(v, str) for v in body.values())
        assert verify(body, SECRET, body["sign"])
        # No extra ever becomes a header (as HttpHook does with its extras).
        for key in ("read_timeout", "max_attempts", "requests_per_second", "timezone"):
            assert key not in {k.lower() for k in request.headers}
        assert_no_secret(*request.headers.values())

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
        assert_no_secret(str(error), repr(error), caplog.text, signatures=gateway.signatures())
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
        assert_no_secret(str(exc.value), caplog.text, signatures=gateway.signatures())

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
            ("3600", 30.0),  # the default retry_after_cap
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
        hook = hook_with(gateway)
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
        assert_no_secret(str(exc.value))

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
        ok, _ = hook_with(gateway, "random_8f3a").test_connection()
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
        assert_no_secret(message, caplog.text, signatures=gateway.signatures())

    def test_bad_config(self, conn_env: Any, gateway: ScriptedGateway) -> None:
        conn_env("nohost", host=None)
        ok, message = hook_with(gateway, "nohost").test_connection()
        assert not ok
        assert "VexoraConfigError" in message

    def test_missing_connection(self, gateway: ScriptedGateway) -> None:
        ok, message = hook_with(gateway, "does_not_exist").test_connection()
        assert not ok
        assert "does_not_exist" in message

    def test_timeout_is_capped(self, conn_env: Any, gateway: ScriptedGateway, mocker: Any) -> None:
        conn_env(extra={"read_timeout": 120, "connect_timeout": 60})
        hook = hook_with(gateway)
        spy = mocker.spy(httpx.Client, "__init__")
        hook.test_connection()
        timeout = spy.call_args.kwargs["timeout"]
        assert timeout.read <= 10
        assert timeout.connect <= 10


def bad_connection(fields: dict[str, object]) -> str:
    conn: dict[str, object] = {"conn_type": "vexora", "host": BASE_URL, "login": MERCHANT, "password": SECRET}
    conn.update(fields)
    return json.dumps(conn)


class TestBadConnections:
    @pytest.mark.anyio
    @pytest.mark.parametrize("case", list(BAD_CONNECTIONS))
    async def test_refused_before_any_request_on_every_path(
        self, monkeypatch: pytest.MonkeyPatch, gateway: ScriptedGateway, case: str
    ) -> None:
        fields, named = BAD_CONNECTIONS[case]
        monkeypatch.setenv("AIRFLOW_CONN_VEXORA_BAD", bad_connection(fields))

        with pytest.raises(VexoraConfigError, match=re.escape(named)):
            hook_with(gateway, "vexora_bad").get_payout_status("T1")
        with pytest.raises(VexoraConfigError, match=re.escape(named)):
            await hook_with(gateway, "vexora_bad").aget_payout_status("T1")
        ok, message = hook_with(gateway, "vexora_bad").test_connection()

        assert not ok
        assert message.startswith("VexoraConfigError: ")
        assert named in message
        assert gateway.requests == []
        assert_no_secret(message)


class TestRetries:
    @pytest.mark.parametrize(
        ("reply", "named"),
        [
            (lambda: httpx.Response(503), "failed (HTTP 503)"),
            (lambda: httpx.Response(429), "failed (HTTP 429)"),
            (lambda: envelope("5000", "system exception"), "failed (code 5000)"),
            (lambda: httpx.ReadTimeout("timed out"), "failed (read timeout after 10s from sandbox-api"),
            (lambda: httpx.Response(200, text="<html>"), "failed (malformed response)"),
        ],
    )
    def test_log_line_names_the_cause(
        self,
        hook: VexoraHook,
        gateway: ScriptedGateway,
        caplog: pytest.LogCaptureFixture,
        reply: Any,
        named: str,
    ) -> None:
        caplog.set_level(logging.INFO, logger="vexora_provider.hooks.vexora")
        gateway.script["T1"] = [reply()]
        hook.get_payout_status("T1")
        assert f"Vexora T1 {named}" in caplog.text
        assert "retry 1 of 3" in caplog.text

    @pytest.mark.parametrize("header", ["-4", "0", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "nan"])
    def test_unusable_retry_after_means_normal_backoff(
        self,
        hook: VexoraHook,
        gateway: ScriptedGateway,
        clock: FakeClock,
        header: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        draws: list[tuple[float, float]] = []

        def highest(low: float, high: float) -> float:  # the jitter's draw, at its upper bound
            draws.append((low, high))
            return high

        monkeypatch.setattr(_retry, "uniform", highest)
        gateway.script["T1"] = [httpx.Response(503, headers={"Retry-After": header})]
        hook.get_payout_status("T1")
        # The 1st retry's jittered backoff, never "retry at once" (or the header's value) by rule.
        assert draws == [(0.0, _retry.BACKOFF_BASE)]
        assert clock.sleeps == [_retry.BACKOFF_BASE]

    def test_retry_after_has_a_session_budget(
        self,
        conn_env: Any,
        gateway: ScriptedGateway,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        conn_env(extra={"retry_after_cap": 20, "retry_after_budget": 50})
        hook = hook_with(gateway)
        asks_an_hour = httpx.Response(429, headers={"Retry-After": "3600"})
        for i in range(6):
            gateway.script[f"T{i}"] = [asks_an_hour]
            hook.get_payout_status(f"T{i}")
        # Capped at 20 s each, 50 s in all, then the normal backoff (at most 0.5 s for a 1st retry).
        obeyed = [s for s in clock.sleeps if s > _retry.BACKOFF_BASE]
        assert obeyed == [pytest.approx(20), pytest.approx(20), pytest.approx(10)]
        assert clock.now - 1000.0 <= 50 + 3 * _retry.BACKOFF_BASE
        assert caplog.text.count("budget of 50s") == 1

    def test_custom_retry_rule_per_call(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        # What a call that must never be repeated blindly does: its own rule, same driver.
        gateway.balance = [httpx.Response(503)] * 3
        runner = hook._runner
        with pytest.raises(VexoraHTTPError) as raised:
            runner.run(runner.driver.balance_call(rule=RetryRule(max_attempts=4, retry_on=lambda e: False)))
        assert raised.value.attempts == 1
        assert len(gateway.requests) == 1


def refusing(gateway: ScriptedGateway, *trade_nos: str) -> None:
    for trade_no in trade_nos:
        gateway.script[trade_no] = [envelope("8000", "sign error")] * 10
    gateway.balance = [envelope("8000", "sign error")] * 10


class TestCredentials:
    def test_wrong_secret_fails_fast_and_says_so(
        self, hook: VexoraHook, gateway: ScriptedGateway, clock: FakeClock
    ) -> None:
        refusing(gateway, "T1", "T2")
        with pytest.raises(VexoraAuthError) as raised:
            hook.get_payout_status("T1")
        paths = [r.url.path.rsplit("/", 1)[1] for r in gateway.requests]
        assert paths == ["queryPayOutResult", "queryBalance"]
        assert clock.sleeps == []
        error = raised.value
        assert (error.trade_no, error.code, error.msg, error.attempts) == ("T1", "8000", "sign error", 1)
        assert error.permanence is Permanence.CONNECTION
        assert "check the merchant number (login) and the app secret (password)" in str(error)
        with pytest.raises(VexoraAuthError) as again:
            hook.get_payout_status("T2")
        assert again.value.attempts == 0
        assert len(gateway.requests) == 2  # known: no request at all
        assert hook.stats.failed == 2

    @pytest.mark.anyio
    async def test_stream_stops_after_two_requests(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        trades = [f"T{i}" for i in range(100)]
        refusing(gateway, *trades)
        with pytest.raises(VexoraAuthError):
            async for _ in hook.astream_payout_statuses(trades, concurrency=16):
                pass
        assert len(gateway.requests) == 2

    def test_order_not_exist_keeps_retrying_and_checks_once(
        self, hook: VexoraHook, gateway: ScriptedGateway
    ) -> None:
        gateway.script["GONE"] = [envelope("8000", "order not exist")] * 10
        gateway.script["GONE2"] = [envelope("8000", "order not exist")] * 10
        for trade_no in ("GONE", "GONE2"):
            with pytest.raises(VexoraAPIError) as raised:
                hook.get_payout_status(trade_no)
            assert (raised.value.code, raised.value.attempts) == ("8000", 4)
        balance_checks = [r for r in gateway.requests if r.url.path.endswith("/queryBalance")]
        assert len(balance_checks) == 1
        assert hook.stats.requested == 2  # the check is the driver's own, not a user call

    def test_an_answered_query_proves_the_credentials(
        self, hook: VexoraHook, gateway: ScriptedGateway
    ) -> None:
        gateway.script["GONE"] = [envelope("8000", "order not exist")] * 10
        hook.get_payout_status("T1")
        with pytest.raises(VexoraAPIError):
            hook.get_payout_status("GONE")
        assert not [r for r in gateway.requests if r.url.path.endswith("/queryBalance")]

    def test_inconclusive_check_is_not_repeated(self, hook: VexoraHook, gateway: ScriptedGateway) -> None:
        gateway.script["GONE"] = [envelope("8000", "order not exist")] * 10
        gateway.balance = [httpx.Response(503)] * 10
        with pytest.raises(VexoraAPIError):
            hook.get_payout_status("GONE")
        balance_checks = [r for r in gateway.requests if r.url.path.endswith("/queryBalance")]
        assert len(balance_checks) == 4  # one check, with its own retries; then never again
        assert gateway.calls_for("GONE") == 4


class TestRegionReport:
    @pytest.mark.parametrize(
        "host",
        ["http://127.0.0.1:37399", "https://sandbox-api.vexora.com/nigera"],
        ids=["no-path", "misspelt"],
    )
    def test_connection_test_succeeds_with_a_warning(
        self, conn_env: Any, gateway: ScriptedGateway, host: str
    ) -> None:
        conn_env(host=host)
        ok, message = hook_with(gateway).test_connection()
        assert ok
        assert "queryBalance OK" in message
        assert "Warning:" in message
        assert "success_time will be empty" in message
        assert "extra timezone" in message

    def test_connection_test_reports_region_and_timezone(self, hook: VexoraHook) -> None:
        ok, message = hook.test_connection()
        assert ok
        assert "region nigeria; successTime read as Africa/Lagos local time (from the region)" in message
        assert "direct" in message
        assert "Warning" not in message

    @pytest.mark.anyio
    async def test_first_use_logs_once_per_hook(
        self, conn_env: Any, gateway: ScriptedGateway, caplog: pytest.LogCaptureFixture
    ) -> None:
        conn_env(host="https://sandbox-api.vexora.com/nigera")
        caplog.set_level(logging.INFO, logger="vexora_provider.hooks.vexora")
        hook = hook_with(gateway)
        hook.get_payout_status("T1")
        hook.get_payout_status("T2")
        await hook.aget_payout_status("T3")
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "did you mean 'nigeria'?" in warnings[0].getMessage()
        assert caplog.text.count("no documented region in the base URL") == 1
