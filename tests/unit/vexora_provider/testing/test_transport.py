"""Each fault as an in-process client sees it: the same exception a loopback client gets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from vexora_provider.testing import AsyncSimulatorTransport, SimulatorTransport, VexoraSimulator

QUERY = "http://sim/nigeria/v1/vexora/queryPayOutResult"

# kind -> (expected exception or HTTP status)
EXPECTED: dict[str, type[Exception] | int] = {
    "http_500": 500,
    "http_502": 502,
    "http_503": 503,
    "http_429": 429,
    "code_5000": 200,
    "code_8000": 200,
    "malformed_json": 200,
    "truncated": httpx.RemoteProtocolError,
    "hang": httpx.ReadTimeout,
    "reset": httpx.ReadError,
}


@pytest.fixture
def sim() -> Iterator[VexoraSimulator]:
    with VexoraSimulator(seed=1) as simulator:
        simulator.add_payout("T1")
        yield simulator


class TestSimulatorTransport:
    @pytest.mark.parametrize("kind", list(EXPECTED))
    def test_each_fault(self, sim: VexoraSimulator, kind: str) -> None:
        sim.add_fault(kind, hang_seconds=60)
        expected = EXPECTED[kind]
        with httpx.Client(transport=sim.transport(sleep=False), timeout=5) as client:
            call = lambda: client.post(QUERY, json=sim.signed(tradeNo="T1"), headers=sim.headers())  # noqa: E731
            if isinstance(expected, int):
                assert call().status_code == expected
            else:
                with pytest.raises(expected):
                    call()

    def test_hang_without_timeout_ends_in_a_disconnect(self, sim: VexoraSimulator) -> None:
        sim.add_fault("hang", hang_seconds=0.01)
        with (
            httpx.Client(transport=sim.transport(), timeout=None) as client,
            pytest.raises(httpx.RemoteProtocolError),
        ):
            client.post(QUERY, json=sim.signed(tradeNo="T1"), headers=sim.headers())

    def test_latency_is_slept_and_can_time_out(self, sim: VexoraSimulator) -> None:
        sim.add_fault("latency", latency_ms=200)
        with (
            httpx.Client(transport=sim.transport(), timeout=0.01) as client,
            pytest.raises(httpx.ReadTimeout),
        ):
            client.post(QUERY, json=sim.signed(tradeNo="T1"), headers=sim.headers())

    def test_small_latency_still_answers(self, sim: VexoraSimulator) -> None:
        sim.add_fault("latency", latency_ms=1)
        with httpx.Client(transport=sim.transport(), timeout=5) as client:
            response = client.post(QUERY, json=sim.signed(tradeNo="T1"), headers=sim.headers())
        assert response.json()["data"]["status"] == "0000"

    def test_is_an_httpx_transport(self, sim: VexoraSimulator) -> None:
        assert isinstance(sim.transport(), httpx.BaseTransport)
        assert isinstance(sim.transport(), SimulatorTransport)


class TestAsyncSimulatorTransport:
    @pytest.mark.parametrize("kind", list(EXPECTED))
    def test_each_fault(self, sim: VexoraSimulator, kind: str) -> None:
        sim.add_fault(kind, hang_seconds=60)
        expected = EXPECTED[kind]

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=sim.async_transport(), timeout=0.05) as client:
                return await client.post(QUERY, json=sim.signed(tradeNo="T1"), headers=sim.headers())

        if isinstance(expected, int):
            assert asyncio.run(call()).status_code == expected
        else:
            with pytest.raises(expected):
                asyncio.run(call())

    def test_latency_does_not_block_the_event_loop(self, sim: VexoraSimulator) -> None:
        # With a 5 s delay each, all 20 calls must reach the gateway while none has answered yet:
        # the delay is an asyncio.sleep, not a blocking one. No wall-clock assertion.
        sim.add_fault("latency", latency_ms=5000)

        async def main() -> tuple[int, int]:
            async with httpx.AsyncClient(transport=sim.async_transport(), timeout=30) as client:
                tasks = [
                    asyncio.create_task(
                        client.post(QUERY, json=sim.signed(tradeNo="T1"), headers=sim.headers())
                    )
                    for _ in range(20)
                ]
                for _ in range(200):
                    await asyncio.sleep(0)
                    if sim.stats()["total"] == 20:
                        break
                done = sum(task.done() for task in tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                return sim.stats()["total"], done

        assert asyncio.run(main()) == (20, 0)

    def test_is_an_async_httpx_transport(self, sim: VexoraSimulator) -> None:
        assert isinstance(sim.async_transport(), AsyncSimulatorTransport)

    def test_calls_in_flight_and_their_peak(self, sim: VexoraSimulator) -> None:
        # Delays and timeouts count as in flight; once everything is answered, nothing is.
        sim.add_fault("latency", latency_ms=200)
        sim.add_fault("hang", trade_no="T9", hang_seconds=60)

        async def main() -> dict[str, int]:
            async with httpx.AsyncClient(transport=sim.async_transport(), timeout=5) as client:
                calls = [
                    client.post(QUERY, json=sim.signed(tradeNo=f"T{i}"), headers=sim.headers())
                    for i in range(7)
                ]
                hung = client.post(QUERY, json=sim.signed(tradeNo="T9"), headers=sim.headers(), timeout=0.3)
                await asyncio.gather(*calls, hung, return_exceptions=True)
            stats = sim.stats()
            return {key: stats[key] for key in ("total", "in_flight", "in_flight_peak")}

        assert asyncio.run(main()) == {"total": 8, "in_flight": 0, "in_flight_peak": 8}
        sim.reset()
        assert (sim.stats()["in_flight_peak"], sim.stats()["connections"]) == (0, 0)
