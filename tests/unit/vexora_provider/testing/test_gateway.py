"""Protocol behaviour of the gateway core, driven through the sync in-process transport."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from vexora_provider.testing import FAULT_KINDS, ManualClock, RegionVariant, VexoraSimulator
from vexora_provider.testing.hostile import HOSTILE_KINDS

MERCHANT, SECRET = "3060414594", "dbecac55466b4958a2d06069fcf49e18"
QUERY = "/v1/vexora/queryPayOutResult"


def independent_sign(body: dict[str, Any], secret: str) -> str:
    """Vexora's documented signature rule written again here, not taken from vexora_provider.signing."""
    kept = sorted((key, value) for key, value in body.items() if key != "sign" and value not in (None, ""))
    text = "".join(f"{key}={value}" for key, value in kept) + secret
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def body(secret: str = SECRET, **fields: str) -> dict[str, str]:
    fields.setdefault("timestamp", "1728613320708")
    return {**fields, "sign": independent_sign(fields, secret)}


@pytest.fixture
def sim() -> Iterator[VexoraSimulator]:
    with VexoraSimulator(seed=3, merchant_no=MERCHANT, secret=SECRET, clock=ManualClock()) as simulator:
        yield simulator


@pytest.fixture
def client(sim: VexoraSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=sim.transport(sleep=False), base_url="http://sim/nigeria") as c:
        yield c


def post(client: httpx.Client, path: str, payload: object, merchant: str | None = MERCHANT) -> dict[str, Any]:
    headers = {"merchantNo": merchant} if merchant else {}
    response = client.post(path, content=json.dumps(payload), headers=headers)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def assert_refused(reply: dict[str, Any], code: str = "8000") -> None:
    assert reply["code"] == code
    assert reply["success"] is False
    assert reply["data"] is None
    assert isinstance(reply["timestamp"], int)


class TestGateway:
    @pytest.mark.parametrize(
        ("secret", "fields", "sign"),
        [
            (
                "dbecac55466b4958a2d06069fcf49e18",
                {"tradeNo": "test_00000002", "timestamp": "1728613320708"},
                "bf0e0b049174b1fbc55e851ba47ad860",
            ),
            (
                "dbecac55466b4958a2d06069fcf49e18",
                {"timestamp": "1724151084278"},
                "968075cd818792c843a132c7473b5918",
            ),
            (
                "dbecac55466b4958a2d06069fcf49e18",
                {"amount": "100", "currency": "USD", "to": "john.doe@email.com"},
                "ecf90dd700a8668b6b64213cc7a82311",
            ),
        ],
    )
    def test_independent_signer_matches_spec_vectors(
        self, secret: str, fields: dict[str, str], sign: str
    ) -> None:
        assert independent_sign(fields, secret) == sign

    def test_independently_signed_request_is_accepted(
        self, sim: VexoraSimulator, client: httpx.Client
    ) -> None:
        sim.add_payout("test_00000002", "success")
        reply = post(client, QUERY, body(tradeNo="test_00000002"))
        assert reply["code"] == "0000"
        assert reply["success"] is True
        assert reply["data"]["status"] == "0000"

    @pytest.mark.parametrize(
        ("payload", "merchant", "msg"),
        [
            (body("0" * 32, tradeNo="T1"), MERCHANT, "sign error"),
            ({**body(tradeNo="T1"), "sign": "bf0e0b049174b1fbc55e851ba47ad860"}, MERCHANT, "sign error"),
            ({"tradeNo": "T1", "timestamp": "1728613320708"}, MERCHANT, "sign error"),
            ({**body(tradeNo="T1"), "sign": body(tradeNo="T1")["sign"].upper()}, MERCHANT, "sign error"),
            ({**body(tradeNo="T1"), "sign": "é" * 32}, MERCHANT, "sign error"),
            ({**body(tradeNo="T1"), "sign": 12345}, MERCHANT, "sign error"),
            ({**body(tradeNo="T1"), "tradeNo": "T2"}, MERCHANT, "sign error"),
            ({"tradeNo": "T1", "sign": independent_sign({"tradeNo": "T1"}, SECRET)}, MERCHANT, "timestamp"),
            (body(tradeNo="T1"), "9999999999", "merchant"),
            (body(tradeNo="T1"), None, "merchant"),
            (["not", "an", "object"], MERCHANT, "JSON object"),
        ],
        ids=[
            "wrong-secret",
            "other-sign",
            "no-sign",
            "upper-case-sign",
            "non-ascii-sign",
            "non-string-sign",
            "tampered",
            "no-timestamp",
            "wrong-merchant",
            "no-merchant",
            "not-object",
        ],
    )
    def test_bad_requests_get_a_refusal_not_data(
        self, sim: VexoraSimulator, client: httpx.Client, payload: object, merchant: str | None, msg: str
    ) -> None:
        sim.add_payout("T1", "success")
        reply = post(client, QUERY, payload, merchant)
        assert_refused(reply)
        assert msg in reply["msg"]
        assert sim.payout("T1").polls == 0  # a refused call never advances the lifecycle

    def test_malformed_request_body_is_refused(self, client: httpx.Client) -> None:
        response = client.post(QUERY, content=b"{not json", headers={"merchantNo": MERCHANT})
        assert_refused(response.json())

    @pytest.mark.parametrize("trade_no", ["NOPE", "SCRIPTED", "OTHER_MERCHANT", "KOREA_ONLY"])
    def test_unknown_trades_are_a_query_failure(
        self, sim: VexoraSimulator, client: httpx.Client, trade_no: str
    ) -> None:
        sim.add_payout("SCRIPTED", created=False)
        other = sim.state.add_merchant("1111111111", "s" * 32)
        sim.state.put(sim.state.make_payout("OTHER_MERCHANT", other.merchant_no))
        sim.add_payout("KOREA_ONLY", region="korea")
        assert_refused(post(client, QUERY, body(tradeNo=trade_no)))

    def test_lifecycle_over_the_api(self, sim: VexoraSimulator, client: httpx.Client) -> None:
        sim.add_payout("T1", "partial", pending_polls=2, amount="300.00")
        statuses = [post(client, QUERY, body(tradeNo="T1"))["data"] for _ in range(3)]
        assert [d["status"] for d in statuses] == ["0015", "0015", "0001"]
        assert statuses[0]["message"] == "in processing"
        assert Decimal(statuses[2]["amount"]) < Decimal("300.00")
        assert statuses[2]["successTime"]

    @pytest.mark.parametrize(
        ("region", "fields", "raw"),
        [
            ("nigeria", {"amount"}, '"amount":"300.00"'),
            ("Vietnam", {"amount"}, '"amount":300.0000'),
            ("indonesia", {"orderAmount", "payAmount", "successTime"}, '"payAmount":"300.00"'),
            ("korea", {"orderAmount", "payAmount", "successTime"}, '"orderAmount":300.0000'),
            ("colombia", {"orderAmount", "payAmount", "channelCode"}, '"payAmount":300.00'),
            ("atlantis", {"amount", "successTime"}, '"amount":"300.00"'),
        ],
    )
    def test_region_variants(
        self, sim: VexoraSimulator, client: httpx.Client, region: str, fields: set[str], raw: str
    ) -> None:
        sim.add_payout("T1", "success", amount="300")
        url = f"http://sim/{region}{QUERY}"
        response = client.post(url, json=body(tradeNo="T1"), headers={"merchantNo": MERCHANT})
        assert raw in response.text
        data = response.json()["data"]
        assert fields <= set(data)
        assert {"tradeNo", "platFormTradeNo", "status", "message"} <= set(data)
        if "successTime" in data:
            assert len(data["successTime"]) == 19  # yyyy-MM-dd HH:mm:ss, no offset

    def test_success_time_is_region_local(self, sim: VexoraSimulator) -> None:
        when = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
        assert sim.gateway.local_time(when, RegionVariant("Asia/Jakarta")) == "2026-01-01 07:00:00"
        assert sim.gateway.local_time(when, RegionVariant("America/Bogota")) == "2025-12-31 19:00:00"

    def test_query_balance(self, client: httpx.Client) -> None:
        reply = post(client, "/v1/vexora/queryBalance", body())
        assert set(reply["data"]) == {"availableAmount", "freezeAmount", "unsettledAmount"}

    def test_disbursement_creates_freezes_and_settles(
        self, sim: VexoraSimulator, client: httpx.Client
    ) -> None:
        created = post(client, "/v1/vexora/disbursements", body(tradeNo="D1", amount="250.50", notifyUrl=""))
        assert created["data"]["status"] == "0015"
        balance = post(client, "/v1/vexora/queryBalance", body())["data"]
        assert (balance["availableAmount"], balance["freezeAmount"]) == ("999749.50", "250.50")
        statuses = [post(client, QUERY, body(tradeNo="D1"))["data"]["status"] for _ in range(2)]
        assert statuses == ["0015", "0000"]  # create_pending_polls defaults to 1
        balance = post(client, "/v1/vexora/queryBalance", body())["data"]
        assert (balance["availableAmount"], balance["freezeAmount"]) == ("999749.50", "0.00")

    @pytest.mark.parametrize(
        ("fields", "msg"),
        [
            ({"tradeNo": "D1", "amount": "-1"}, "amount"),
            ({"tradeNo": "D1", "amount": "x"}, "amount"),
            ({"amount": "5"}, "tradeNo"),
            ({"tradeNo": "D1", "amount": "99999999"}, "balance"),
        ],
    )
    def test_disbursement_refusals(
        self, sim: VexoraSimulator, client: httpx.Client, fields: dict[str, str], msg: str
    ) -> None:
        sim.add_payout("EXISTS")
        reply = post(client, "/v1/vexora/disbursements", body(**fields))
        assert_refused(reply)
        assert msg in reply["msg"]

    def test_disbursement_of_a_scripted_payout_keeps_its_lifecycle(
        self, sim: VexoraSimulator, client: httpx.Client
    ) -> None:
        sim.add_payout("D1", "failed", pending_polls=0, created=False)
        post(client, "/v1/vexora/disbursements", body(tradeNo="D1", amount="10"))
        assert post(client, QUERY, body(tradeNo="D1"))["data"]["status"] == "00029"

    def test_unknown_paths(self, client: httpx.Client) -> None:
        assert client.post("/v1/other/thing", json={}).status_code == 404
        assert client.get(QUERY).status_code == 405

    @pytest.mark.parametrize(
        "kind",
        [
            k
            for k in FAULT_KINDS
            if k not in ("latency", "truncated", "hang", "reset", *HOSTILE_KINDS)
            and not k.startswith("accept_then_")
        ],
    )
    def test_faults_replace_the_answer(self, sim: VexoraSimulator, kind: str) -> None:
        sim.add_payout("T1")
        sim.add_fault(kind, "queryPayOutResult", retry_after=3)
        reply = sim.gateway.handle(
            "POST", f"/nigeria{QUERY}", MERCHANT, json.dumps(body(tradeNo="T1")).encode()
        )
        expected = {"http_500": 500, "http_502": 502, "http_503": 503, "http_429": 429}.get(kind, 200)
        assert reply.status == expected
        if kind == "http_429":
            assert (b"retry-after", b"3") in reply.headers
        if kind.startswith("code_"):
            assert_refused(json.loads(reply.body), kind[5:])
        if kind == "malformed_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(reply.body)
        assert sim.payout("T1").polls == 0
        assert sim.stats()["outcomes"]["queryPayOutResult"] == {kind: 1}

    @pytest.mark.parametrize(
        ("kind", "options", "field", "expected"),
        [
            ("surrogate_message", {}, "message", "lone \ud800 surrogate"),
            ("nul_message", {}, "message", "nul \x00 inside"),
            ("nul_status", {}, "status", "0000\x00"),
            ("nul_platform_trade_no", {}, "platFormTradeNo", "VX\x00"),
            ("deep_nesting", {"depth": 3}, "channelData", [[[]]]),
            ("time_max", {}, "successTime", "9999-12-31 23:59:59"),
            ("time_min", {}, "successTime", "0001-01-01 00:00:00"),
            ("odd_amount", {"amount": '"1_000"'}, "amount", "1_000"),
            ("odd_amount", {"amount": "1E+400"}, "amount", Decimal("1E+400")),
        ],
    )
    def test_hostile_answers_alter_one_field_of_the_real_answer(
        self, sim: VexoraSimulator, kind: str, options: dict[str, Any], field: str, expected: object
    ) -> None:
        sim.add_payout("T1", "failed")
        sim.add_fault(kind, "queryPayOutResult", **options)
        reply = sim.gateway.handle(
            "POST", f"/nigeria{QUERY}", MERCHANT, json.dumps(body(tradeNo="T1")).encode()
        )
        data = json.loads(reply.body, parse_float=Decimal)["data"]
        assert data[field] == expected
        assert data["tradeNo"] == "T1"
        assert data["status"] == ("0000\x00" if kind == "nul_status" else "00029")  # the real lifecycle
        assert sim.payout("T1").polls == 1
        assert sim.stats()["outcomes"]["queryPayOutResult"] == {kind: 1}


class TestDisbursements:
    """``disbursements`` keeps one payout per (merchant, tradeNo), whatever goes wrong on the wire."""

    def create(
        self, sim: VexoraSimulator, trade_no: str = "D1", merchant: str = MERCHANT, **extra: str
    ) -> Any:
        secret = sim.state.merchants[merchant].secret
        payload = body(secret, tradeNo=trade_no, amount="10.00", **extra)
        return sim.gateway.handle(
            "POST", "/nigeria/v1/vexora/disbursements", merchant, json.dumps(payload).encode()
        )

    @pytest.mark.parametrize("code", [None, "8000", "7777"])
    def test_a_used_trade_number_gets_the_duplicate_code(self, code: str | None) -> None:
        options = {} if code is None else {"duplicate_code": code}
        with VexoraSimulator(seed=3, merchant_no=MERCHANT, secret=SECRET, **options) as sim:
            assert json.loads(self.create(sim).body)["code"] == "0000"
            again = json.loads(self.create(sim).body)
            assert_refused(again, code or "8001")
            assert again["msg"] == "tradeNo already exists"
            assert sim.creates("D1") == 1
            assert sim.merchant.freeze == Decimal("10.00")  # frozen once

    def test_trade_numbers_are_per_merchant(self, sim: VexoraSimulator) -> None:
        other = sim.state.add_merchant("3060414595", "another-secret")
        assert json.loads(self.create(sim).body)["code"] == "0000"
        assert json.loads(self.create(sim, merchant=other.merchant_no).body)["code"] == "0000"
        assert sim.gateway.disbursed == {(MERCHANT, "D1"): 1, (other.merchant_no, "D1"): 1}
        assert sim.state.find(other.merchant_no, "D1") is not sim.state.find(MERCHANT, "D1")

    @pytest.mark.parametrize(
        ("kind", "status", "action"),
        [
            ("accept_then_reset", 200, "reset"),
            ("accept_then_http_502", 502, None),
            ("accept_then_hang", 200, "hang"),
        ],
    )
    def test_accepted_then_the_answer_is_lost(
        self, sim: VexoraSimulator, client: httpx.Client, kind: str, status: int, action: str | None
    ) -> None:
        sim.add_fault(kind, "disbursements", nth=(1,), hang_seconds=0.5)
        reply = self.create(sim)
        assert (reply.status, reply.action) == (status, action)
        assert sim.creates("D1") == 1  # the money moved although the client heard nothing
        assert post(client, QUERY, body(tradeNo="D1"))["data"]["status"] == "0015"
        assert sim.stats()["outcomes"]["disbursements"] == {kind: 1}

    def test_not_found_hides_an_existing_payout(self, sim: VexoraSimulator, client: httpx.Client) -> None:
        sim.add_payout("T1")
        sim.add_fault("not_found", "queryPayOutResult", nth=(1,))
        lagging = post(client, QUERY, body(tradeNo="T1"))
        assert_refused(lagging)
        assert lagging["msg"] == "order not exist"
        assert post(client, QUERY, body(tradeNo="T1"))["code"] == "0000"
        assert sim.payout("T1").polls == 1  # the hidden answer did not count as a poll
