from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Iterator

import httpx
import pytest

from vexora_provider.testing import FaultRule, VexoraSimulator

QUERY = "http://sim/nigeria/v1/vexora/queryPayOutResult"


@pytest.fixture
def sim() -> Iterator[VexoraSimulator]:
    with VexoraSimulator(seed=11) as simulator:
        yield simulator


def _run(seed: int, order_seed: int, threads: int) -> dict[str, list[str]]:
    """Poll every payout 4 times from several threads in a shuffled order; return what each saw."""
    sim = VexoraSimulator(seed=seed)
    trade_nos = sim.create_payouts(60, {"success": 0.5, "failed": 0.3, "partial": 0.2}, pending_polls=(0, 2))
    sim.add_fault("http_503", probability=0.2)
    sim.add_fault("code_5000", probability=0.1)
    # Each trade belongs to one thread (a client polls its own trade in sequence), but the threads
    # interleave and each shuffles its trades: arrival order across trades differs run to run.
    rng = random.Random(order_seed)
    shuffled = list(trade_nos)
    rng.shuffle(shuffled)
    chunks = [[t for t in shuffled[i::threads] for _ in range(4)] for i in range(threads)]
    for chunk in chunks:
        rng.shuffle(chunk)
    seen: dict[str, list[str]] = {t: [] for t in trade_nos}
    lock = threading.Lock()

    def worker(chunk: list[str]) -> None:
        with httpx.Client(transport=sim.transport(sleep=False)) as client:
            for trade_no in chunk:
                r = client.post(QUERY, json=sim.signed(tradeNo=trade_no), headers=sim.headers())
                outcome = (
                    r.json()["data"]["status"]
                    if r.status_code == 200 and r.json()["data"]
                    else str(r.status_code)
                )
                outcome = outcome if r.status_code != 200 or r.json()["code"] == "0000" else r.json()["code"]
                with lock:
                    seen[trade_no].append(outcome)

    pool = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    sim.close()
    return seen


class TestVexoraSimulator:
    def test_same_seed_same_outcomes_in_any_arrival_order(self) -> None:
        assert _run(5, order_seed=1, threads=1) == _run(5, order_seed=2, threads=8)

    def test_other_seed_other_outcomes(self) -> None:
        assert _run(5, order_seed=1, threads=1) != _run(6, order_seed=1, threads=1)

    def test_credentials_from_seed_or_given(self) -> None:
        assert VexoraSimulator(seed=1).secret == VexoraSimulator(seed=1).secret
        given = VexoraSimulator(merchant_no="3060414594", secret="abc")
        assert (given.merchant_no, given.secret) == ("3060414594", "abc")

    def test_create_payouts_continues_numbering(self, sim: VexoraSimulator) -> None:
        assert sim.create_payouts(2) == ["SIM00000000", "SIM00000001"]
        assert sim.create_payouts(1) == ["SIM00000002"]
        assert sim.create_payouts(1, prefix="X") == ["X00000000"]

    def test_add_fault_accepts_rule_or_kind(self, sim: VexoraSimulator) -> None:
        sim.add_fault(FaultRule("reset"))
        sim.add_fault("http_429", "queryBalance", 0.5, retry_after=9)
        assert [r.kind for r in sim.faults.rules] == ["reset", "http_429"]
        sim.clear_faults()
        assert sim.faults.rules == []

    def test_stats_and_calls(self, sim: VexoraSimulator) -> None:
        sim.add_payout("T1", pending_polls=5)
        with httpx.Client(transport=sim.transport()) as client:
            for _ in range(3):
                client.post(QUERY, json=sim.signed(tradeNo="T1"), headers=sim.headers())
        stats = sim.stats(trades=True)
        assert stats["requests"] == {"queryPayOutResult": 3}
        assert stats["outcomes"] == {"queryPayOutResult": {"0000": 3}}
        assert stats["trades"] == {"T1": {"queryPayOutResult": 3}}
        assert stats["payouts"] == {"0015": 1}
        assert sim.calls("T1") == 3

    def test_reset(self, sim: VexoraSimulator) -> None:
        sim.create_payouts(3)
        sim.add_fault("reset")
        sim.reset(seed=99)
        assert (sim.seed, sim.state.payouts, sim.faults.rules, sim.stats()["total"]) == (99, {}, [], 0)
        assert sim.create_payouts(1) == ["SIM00000000"]

    def test_airflow_connection(self, sim: VexoraSimulator) -> None:
        conn = json.loads(sim.airflow_connection("http://127.0.0.1:8080", "korea", timeout=3))
        assert conn == {
            "conn_type": "vexora",
            "host": "http://127.0.0.1:8080/korea",
            "login": sim.merchant_no,
            "password": sim.secret,
            "extra": {"timeout": 3},
        }
        env = sim.airflow_env("vexora_test")
        assert list(env) == ["AIRFLOW_CONN_VEXORA_TEST"]
        assert json.loads(env["AIRFLOW_CONN_VEXORA_TEST"])["host"].endswith("/nigeria")

    def test_asgi_app_in_process(self, sim: VexoraSimulator) -> None:
        sim.add_payout("T1")

        async def main() -> httpx.Response:
            transport = httpx.ASGITransport(app=sim.asgi_app())
            async with httpx.AsyncClient(transport=transport) as client:
                return await client.post(QUERY, json=sim.signed(tradeNo="T1"), headers=sim.headers())

        assert asyncio.run(main()).json()["data"]["status"] == "0000"

    def test_import_does_not_pull_in_airflow(self) -> None:
        import subprocess
        import sys

        code = (
            "import sys, vexora_provider.testing; print('airflow' in sys.modules, 'uvicorn' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        assert out.stdout.split() == ["False", "False"]


class TestVexoraSimulatorFixture:
    @pytest.mark.vexora_simulator(seed=42, create_pending_polls=0)
    def test_marker_configures_the_fixture(self, vexora_simulator: VexoraSimulator) -> None:
        assert vexora_simulator.seed == 42
        assert vexora_simulator.gateway.create_pending_polls == 0

    def test_default_fixture_is_fresh(self, vexora_simulator: VexoraSimulator) -> None:
        assert vexora_simulator.state.payouts == {}
