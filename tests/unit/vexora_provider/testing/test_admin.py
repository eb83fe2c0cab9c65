from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vexora_provider.testing import VexoraSimulator

ADMIN = "http://sim/_simulator"


@pytest.fixture
def sim() -> Iterator[VexoraSimulator]:
    with VexoraSimulator(seed=2) as simulator:
        yield simulator


@pytest.fixture
def client(sim: VexoraSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=sim.transport(), base_url=ADMIN) as c:
        yield c


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


class TestAdminApi:
    def test_health_and_info(self, sim: VexoraSimulator, client: httpx.Client) -> None:
        assert ok(client.get("/health")) == {"ok": True}
        assert ok(client.get("/info")) == {"merchantNo": sim.merchant_no, "secret": sim.secret, "seed": 2}

    def test_create_bulk_and_single_payouts(self, sim: VexoraSimulator, client: httpx.Client) -> None:
        made = ok(client.post("/payouts", json={"n": 3, "mix": {"failed": 1}, "pending_polls": [1, 2]}))
        assert made == {"tradeNos": ["SIM00000000", "SIM00000001", "SIM00000002"]}
        ok(client.post("/payouts", json={"trade_no": "ONE", "final": "partial", "pending_polls": 0}))
        assert sim.payout("ONE").final_code == "0001"
        listed = ok(client.get("/payouts"))
        assert listed["count"] == 4
        assert ok(client.get("/payouts/ONE"))["finalStatus"] == "0001"
        assert client.get("/payouts/NOPE").status_code == 404

    def test_faults(self, sim: VexoraSimulator, client: httpx.Client) -> None:
        rules = ok(
            client.post("/faults", json={"kind": "http_503", "endpoint": "queryPayOutResult", "nth": [1]})
        )
        assert rules == {
            "faults": [
                {
                    "kind": "http_503",
                    "endpoint": "queryPayOutResult",
                    "probability": 1.0,
                    "nth": [1],
                    "latency_ms": 0.0,
                    "retry_after": 1,
                    "hang_seconds": 30.0,
                }
            ]
        }
        ok(client.post("/faults", json=[{"kind": "reset"}, {"kind": "latency", "latency_ms": 5}]))
        assert len(sim.faults.rules) == 3
        assert ok(client.get("/faults"))["faults"][1]["kind"] == "reset"
        assert ok(client.delete("/faults")) == {"faults": []}

    @pytest.mark.parametrize(
        ("method", "path", "payload", "status"),
        [
            ("POST", "/faults", {"kind": "nope"}, 400),
            ("POST", "/payouts", {"n": 1, "mix": {"success": -1}}, 400),
            ("GET", "/nothing", None, 404),
            ("PUT", "/payouts", {}, 405),
        ],
    )
    def test_errors(self, client: httpx.Client, method: str, path: str, payload: object, status: int) -> None:
        assert client.request(method, path, json=payload).status_code == status

    def test_body_not_json(self, client: httpx.Client) -> None:
        assert client.post("/reset", content=b"{").status_code == 400

    def test_stats_per_trade_and_reset(self, sim: VexoraSimulator, client: httpx.Client) -> None:
        sim.add_payout("T1")
        with httpx.Client(transport=sim.transport()) as api:
            api.post(
                "http://sim/korea/v1/vexora/queryPayOutResult",
                json=sim.signed(tradeNo="T1"),
                headers=sim.headers(),
            )
        assert ok(client.get("/stats", params={"trade_no": "T1"}))["trades"] == {
            "T1": {"queryPayOutResult": 1}
        }
        assert "trades" not in ok(client.get("/stats"))
        assert ok(client.post("/reset", json={"seed": 8})) == {"ok": True, "seed": 8}
        assert ok(client.get("/stats"))["total"] == 0

    def test_reachable_under_a_region_prefix(self, client: httpx.Client) -> None:
        assert ok(client.get("http://sim/nigeria/_simulator/health")) == {"ok": True}

    def test_callbacks_listing(self, client: httpx.Client) -> None:
        assert ok(client.get("/callbacks")) == {"deliveries": []}

    def test_bulk_notify_url_and_redelivery(self, sim: VexoraSimulator, client: httpx.Client) -> None:
        url = "http://127.0.0.1:9/vexora/callbacks/vexora_default"
        [trade_no] = ok(client.post("/payouts", json={"n": 1, "notify_url": url}))["tradeNos"]
        assert sim.payout(trade_no).notify_url == url
        assert ok(client.post("/callbacks/redeliver", json={"trade_no": trade_no})) == {"ok": True}
        assert client.post("/callbacks/redeliver", json={"trade_no": "NOPE"}).status_code == 400
