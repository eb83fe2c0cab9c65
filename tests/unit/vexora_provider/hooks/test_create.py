"""Creating payouts: every branch of the create flow, sync and async, against a gateway with a ledger."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from vexora_hook_support import assert_no_secret, envelope, hook_with

from vexora_provider.exceptions import (
    Permanence,
    VexoraAPIError,
    VexoraAuthError,
    VexoraError,
    VexoraHTTPError,
    VexoraInvalidPayoutError,
    VexoraInvalidTradeNoError,
    VexoraPayoutExistsError,
    VexoraPayoutUnknownError,
    VexoraTransportError,
)
from vexora_provider.hooks._create import PayoutRequest, never_reached_gateway
from vexora_provider.models import PayoutState, PayoutStatus

FIELDS = {"accountNo": "0123456789", "bankCode": "058", "accountName": "Ada Obi"}
HIDE = "hide"  # a query answered "order not exist" although the payout exists (a lagging read)


@dataclass
class Accept:
    """The gateway does the work, then the client gets ``then`` instead of the answer."""

    then: httpx.Response | Exception


Step = httpx.Response | Exception | Accept | str


@dataclass
class Ledger:
    """A gateway that keeps payouts by trade number, with scripted trouble per endpoint."""

    duplicate_code: str = "8001"
    payouts: dict[str, dict[str, str]] = field(default_factory=dict)
    creates: list[Step] = field(default_factory=list)
    queries: list[Step] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    accepted: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        endpoint = request.url.path.rsplit("/", 1)[-1]
        body = json.loads(request.content)
        self.requests.append((endpoint, body))
        if endpoint == "queryBalance":
            return envelope("8000", "sign error")
        script = self.creates if endpoint == "disbursements" else self.queries
        step: Step = script.pop(0) if script else "ok"
        if isinstance(step, Accept):
            self.answer(endpoint, body, step.then)
            step = step.then
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return self.answer(endpoint, body, step)

    def answer(self, endpoint: str, body: dict[str, str], step: object) -> httpx.Response:
        trade_no = body["tradeNo"]
        payout = self.payouts.get(trade_no)
        if endpoint == "disbursements":
            if payout is not None:
                return envelope(self.duplicate_code, "tradeNo already exists")
            self.accepted += 1
            payout = self.payouts[trade_no] = {
                "tradeNo": trade_no,
                "status": "0015",
                "amount": body["amount"],
            }
            return envelope("0000", "success", payout)
        if payout is None or step == HIDE:
            return envelope("8000", "order not exist")
        return envelope("0000", "success", payout)

    def endpoints(self) -> list[str]:
        return [endpoint for endpoint, _ in self.requests]


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture(params=["sync", "async"])
def create(request: pytest.FixtureRequest, conn_env: Any, ledger: Ledger) -> Callable[..., PayoutStatus]:
    """``create(**kwargs)``: the sync hook's create_payout, or the async twin run to completion."""
    hook = hook_with(ledger)  # type: ignore[arg-type]

    def run(**kwargs: Any) -> PayoutStatus:
        kwargs = {"trade_no": "PO-1", "amount": "150.00", "fields": FIELDS, **kwargs}
        if request.param == "sync":
            return hook.create_payout(**kwargs)
        return asyncio.run(hook.acreate_payout(**kwargs))

    return run


def reset() -> Exception:
    return httpx.ReadError("[Errno 104] Connection reset by peer")


UNCLEAR: dict[str, Callable[[], httpx.Response | Exception]] = {
    "read-timeout": lambda: httpx.ReadTimeout("timed out"),
    "reset": reset,
    "truncated": lambda: httpx.RemoteProtocolError("peer closed connection without complete body"),
    "http-500": lambda: httpx.Response(500, text="oops"),
    "http-502": lambda: httpx.Response(502, text="<html>bad gateway</html>"),
    "http-429": lambda: httpx.Response(429),
    "code-5000": lambda: envelope("5000", "system exception"),
    "not-json": lambda: httpx.Response(200, text="<html>proxy error</html>"),
    "no-status": lambda: envelope("0000", "success", {"tradeNo": "PO-1"}),
}


class TestCreatePayout:
    def test_a_new_trade_is_queried_then_created(
        self, create: Callable[..., PayoutStatus], ledger: Ledger
    ) -> None:
        status = create(notify_url="https://merchant.example/cb", remark="")
        assert (status.trade_no, status.state, status.amount) == (
            "PO-1",
            PayoutState.PENDING,
            Decimal("150.00"),
        )
        assert ledger.endpoints() == ["queryPayOutResult", "disbursements"]
        sent = ledger.requests[1][1]
        assert {k: v for k, v in sent.items() if k not in ("timestamp", "sign")} == {
            **FIELDS,
            "tradeNo": "PO-1",
            "amount": "150.00",
            "notifyUrl": "https://merchant.example/cb",
        }
        assert ledger.accepted == 1

    def test_an_existing_payout_is_never_created_again(
        self, create: Callable[..., PayoutStatus], ledger: Ledger
    ) -> None:
        ledger.payouts["PO-1"] = {"tradeNo": "PO-1", "status": "0000", "amount": "150.00"}
        with pytest.raises(VexoraPayoutExistsError) as raised:
            create()
        assert raised.value.existing.state is PayoutState.SUCCESS
        assert raised.value.permanence is Permanence.TRADE
        assert ledger.endpoints() == ["queryPayOutResult"]

    @pytest.mark.parametrize(
        ("reply", "error"),
        [
            (lambda: httpx.Response(503), VexoraHTTPError),
            (lambda: httpx.ReadTimeout("slow"), VexoraTransportError),
        ],
        ids=["http-503", "read-timeout"],
    )
    def test_a_failed_first_query_sends_nothing(
        self, create: Callable[..., PayoutStatus], ledger: Ledger, reply: Callable[[], Any], error: type
    ) -> None:
        ledger.queries = [reply() for _ in range(4)]
        with pytest.raises(error):
            create()
        assert set(ledger.endpoints()) == {"queryPayOutResult"}

    def test_a_query_failure_that_is_not_order_missing_sends_nothing(
        self, create: Callable[..., PayoutStatus], ledger: Ledger
    ) -> None:
        ledger.queries = [envelope("8000", "sign error")]
        with pytest.raises(VexoraAuthError):
            create()
        assert "disbursements" not in ledger.endpoints()

    @pytest.mark.parametrize("kind", sorted(UNCLEAR))
    def test_an_unclear_answer_after_the_work_returns_the_payout(
        self, create: Callable[..., PayoutStatus], ledger: Ledger, kind: str
    ) -> None:
        ledger.creates = [Accept(UNCLEAR[kind]())]
        status = create()
        assert status.trade_no == "PO-1"
        assert ledger.endpoints() == ["queryPayOutResult", "disbursements", "queryPayOutResult"]
        assert ledger.accepted == 1

    @pytest.mark.parametrize("kind", sorted(UNCLEAR))
    def test_an_unclear_answer_without_the_work_sends_the_same_create_again(
        self, create: Callable[..., PayoutStatus], ledger: Ledger, kind: str
    ) -> None:
        ledger.creates = [UNCLEAR[kind]()]
        create()
        assert ledger.endpoints() == [
            "queryPayOutResult",
            "disbursements",
            "queryPayOutResult",
            "disbursements",
        ]
        creates = [body for endpoint, body in ledger.requests if endpoint == "disbursements"]
        assert {c["tradeNo"] for c in creates} == {"PO-1"}
        assert creates[0]["timestamp"] <= creates[1]["timestamp"]
        assert ledger.accepted == 1

    @pytest.mark.parametrize(
        "failure",
        [httpx.ConnectError("[Errno 111] Connection refused"), httpx.ConnectTimeout("timed out")],
        ids=["refused", "connect-timeout"],
    )
    def test_a_create_that_never_left_is_sent_again_at_once(
        self, create: Callable[..., PayoutStatus], ledger: Ledger, failure: Exception
    ) -> None:
        ledger.creates = [failure, failure]
        create()
        assert ledger.endpoints() == ["queryPayOutResult", "disbursements", "disbursements", "disbursements"]
        assert ledger.accepted == 1

    def test_a_create_that_never_left_after_all_tries_is_raised(
        self, create: Callable[..., PayoutStatus], ledger: Ledger
    ) -> None:
        ledger.creates = [httpx.ConnectError("[Errno 111] Connection refused")] * 4
        with pytest.raises(VexoraTransportError) as raised:
            create()
        assert raised.value.kind == "refused"
        assert ledger.endpoints().count("queryPayOutResult") == 1  # nothing left: nothing to settle

    def test_a_refusal_stands_when_no_payout_exists(
        self, create: Callable[..., PayoutStatus], ledger: Ledger
    ) -> None:
        ledger.creates = [envelope("8000", "insufficient balance")]
        with pytest.raises(VexoraAPIError) as raised:
            create()
        assert (raised.value.code, raised.value.msg) == ("8000", "insufficient balance")
        assert raised.value.permanence is Permanence.CALL
        assert ledger.endpoints() == ["queryPayOutResult", "disbursements", "queryPayOutResult"]
        assert ledger.accepted == 0

    @pytest.mark.parametrize("code", ["8001", "8000", "1234"])
    def test_a_duplicate_answer_finds_the_existing_payout(
        self, create: Callable[..., PayoutStatus], ledger: Ledger, code: str
    ) -> None:
        ledger.duplicate_code = code
        ledger.payouts["PO-1"] = {"tradeNo": "PO-1", "status": "0015", "amount": "150.00"}
        ledger.queries = [HIDE]
        with pytest.raises(VexoraPayoutExistsError) as raised:
            create()
        assert raised.value.existing.platform_trade_no is None
        assert ledger.endpoints() == ["queryPayOutResult", "disbursements", "queryPayOutResult"]

    def test_a_duplicate_after_an_unclear_create_is_this_create(
        self, create: Callable[..., PayoutStatus], ledger: Ledger
    ) -> None:
        ledger.creates = [Accept(reset())]
        ledger.queries = ["ok", HIDE]  # the payout is not visible yet right after the create
        status = create()
        assert status.trade_no == "PO-1"
        assert ledger.endpoints() == [
            "queryPayOutResult",
            "disbursements",
            "queryPayOutResult",
            "disbursements",
            "queryPayOutResult",
        ]
        assert ledger.accepted == 1

    def test_an_unsettled_create_sends_nothing_more(
        self, create: Callable[..., PayoutStatus], ledger: Ledger
    ) -> None:
        ledger.creates = [Accept(reset())]
        ledger.queries = ["ok"] + [httpx.Response(503)] * 4
        with pytest.raises(VexoraPayoutUnknownError) as raised:
            create()
        error = raised.value
        assert error.transient
        assert "whether the payout exists is unknown" in str(error)
        assert isinstance(error.__cause__, VexoraHTTPError)
        assert ledger.endpoints().count("disbursements") == 1
        assert ledger.accepted == 1

    def test_an_error_no_retry_can_fix_while_settling_is_raised_as_such(
        self, create: Callable[..., PayoutStatus], ledger: Ledger
    ) -> None:
        ledger.creates = [Accept(httpx.Response(502))]
        ledger.queries = ["ok", httpx.ProxyError("407 Proxy Authentication Required")]
        with pytest.raises(VexoraTransportError) as raised:
            create()
        assert raised.value.permanence is Permanence.CONNECTION
        assert ledger.endpoints().count("disbursements") == 1

    def test_creates_are_bounded_by_max_attempts(
        self, create: Callable[..., PayoutStatus], ledger: Ledger
    ) -> None:
        ledger.creates = [httpx.Response(502)] * 10
        with pytest.raises(VexoraPayoutUnknownError) as raised:
            create()
        assert "4 create requests got no clear answer (last: HTTP 502)" in str(raised.value)
        assert ledger.endpoints().count("disbursements") == 4
        assert ledger.accepted == 0

    @pytest.mark.parametrize(
        ("kwargs", "error", "words"),
        [
            ({"amount": "1e3"}, VexoraInvalidPayoutError, "not a plain decimal"),
            ({"amount": 150.0}, VexoraInvalidPayoutError, "float"),
            ({"amount": "0.00"}, VexoraInvalidPayoutError, "greater than zero"),
            ({"fields": {"amount": "1"}}, VexoraInvalidPayoutError, "'amount' is not allowed"),
            ({"fields": {"": "1"}}, VexoraInvalidPayoutError, "is not allowed"),
            ({"fields": {"bankCode": 58}}, VexoraInvalidPayoutError, "must be a string, not int"),
            ({"remark": 5}, VexoraInvalidPayoutError, "remark must be a string"),
            ({"trade_no": "x" * 33}, VexoraInvalidTradeNoError, "at most 32"),
        ],
    )
    def test_bad_input_is_refused_before_any_request(
        self,
        create: Callable[..., PayoutStatus],
        ledger: Ledger,
        kwargs: dict[str, Any],
        error: type[VexoraError],
        words: str,
    ) -> None:
        with pytest.raises(error, match=words) as raised:
            create(**kwargs)
        assert raised.value.permanence is Permanence.TRADE
        assert ledger.requests == []

    def test_no_secret_in_errors_or_logs(
        self, create: Callable[..., PayoutStatus], ledger: Ledger, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        ledger.creates = [Accept(reset())]
        ledger.queries = [
            "ok",
            httpx.Response(503),
            httpx.Response(503),
            httpx.Response(503),
            httpx.Response(503),
        ]
        with pytest.raises(VexoraPayoutUnknownError) as raised:
            create()
        signatures = [body["sign"] for _, body in ledger.requests]
        assert_no_secret(str(raised.value), repr(raised.value), caplog.text, signatures=signatures)
        assert FIELDS["accountNo"] not in caplog.text  # beneficiary data is never logged


class TestFindPayout:
    def test_missing_is_none_and_existing_is_the_status(self, conn_env: Any, ledger: Ledger) -> None:
        hook = hook_with(ledger)  # type: ignore[arg-type]
        assert hook.find_payout("PO-1") is None
        ledger.payouts["PO-1"] = {"tradeNo": "PO-1", "status": "00029"}
        found = hook.find_payout("PO-1")
        assert found is not None
        assert found.state is PayoutState.FAILED
        assert asyncio.run(hook.afind_payout("PO-1")) == found
        assert ledger.endpoints() == ["queryPayOutResult"] * 3


class TestPayoutRequest:
    def test_empty_values_are_neither_sent_nor_signed(self) -> None:
        request = PayoutRequest.build(
            trade_no="PO-1",
            amount=Decimal("1.5E+3"),
            fields={"bankCode": "", "a": "b"},
            notify_url="",
            remark="r",
        )
        assert dict(request.fields) == {"a": "b", "remark": "r", "tradeNo": "PO-1", "amount": "1500"}
        assert request.amount == "1500"


class TestNeverReachedGateway:
    @pytest.mark.parametrize(
        ("kind", "expected"),
        [
            ("refused", True),
            ("connect", True),
            ("connect_timeout", True),
            ("pool_timeout", True),
            ("read_timeout", False),
            ("write_timeout", False),
            ("reset", False),
            ("closed", False),
            ("read", False),
            ("other", False),
        ],
    )
    def test_only_connect_phase_failures(self, kind: str, expected: bool) -> None:
        error = VexoraTransportError("x", kind=kind, transient=True)
        assert never_reached_gateway(error) is expected

    def test_answers_are_never_unsent(self) -> None:
        assert not never_reached_gateway(VexoraHTTPError(http_status=502, transient=True))
        assert not never_reached_gateway(VexoraAPIError(code="5000", msg="", transient=True))
