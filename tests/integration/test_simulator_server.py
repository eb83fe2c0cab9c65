"""The simulator on a real loopback socket: signed calls with plain httpx, faults on the wire."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.server import SimulatorServer

pytestmark = pytest.mark.integration

QUERY = "/v1/vexora/queryPayOutResult"


def md5_body(secret: str, **fields: str) -> dict[str, str]:
    """Signed with Vexora's documented rule, written here independently of vexora_provider.signing."""
    fields.setdefault("timestamp", str(int(time.time() * 1000)))
    text = "".join(f"{k}={v}" for k, v in sorted(fields.items()) if v not in ("", None)) + secret
    return {**fields, "sign": hashlib.md5(text.encode()).hexdigest()}


def query(
    server: SimulatorServer, trade_no: str, *, timeout: float = 5.0, secret: str | None = None
) -> httpx.Response:
    sim = server.sim
    with httpx.Client(base_url=server.base_url("indonesia"), timeout=timeout, trust_env=False) as client:
        return client.post(
            QUERY,
            json=md5_body(secret or sim.secret, tradeNo=trade_no),
            headers={"merchantNo": sim.merchant_no},
        )


@pytest.fixture(params=["fast", "uvicorn"])
def engine_server(
    request: pytest.FixtureRequest, vexora_simulator: VexoraSimulator
) -> Iterator[SimulatorServer]:
    """The per-test simulator served by each engine in turn: both must look the same on the wire."""
    with vexora_simulator.serve(engine=request.param) as server:
        yield server


class TestSimulatorServer:
    def test_signed_request_accepted_wrong_one_refused(self, engine_server: SimulatorServer) -> None:
        engine_server.sim.add_payout("T1", "success", pending_polls=1, amount="300")
        first = query(engine_server, "T1").json()
        assert (first["code"], first["success"], first["data"]["status"]) == ("0000", True, "0015")
        second = query(engine_server, "T1").json()
        assert (second["data"]["status"], second["data"]["payAmount"]) == ("0000", "300.00")
        refused = query(engine_server, "T1", secret="0" * 32)
        assert refused.status_code == 200
        assert (refused.json()["code"], refused.json()["data"]) == ("8000", None)

    @pytest.mark.parametrize(
        ("kind", "outcome"),
        [
            ("http_500", 500),
            ("http_502", 502),
            ("http_503", 503),
            ("http_429", 429),
            ("code_5000", "5000"),
            ("code_8000", "8000"),
            ("malformed_json", json.JSONDecodeError),
            ("truncated", httpx.RemoteProtocolError),
            ("hang", httpx.ReadTimeout),
            ("reset", (httpx.ReadError, httpx.RemoteProtocolError)),
        ],
    )
    def test_faults_on_the_wire(self, engine_server: SimulatorServer, kind: str, outcome: Any) -> None:
        sim = engine_server.sim
        sim.add_payout("T1")
        sim.add_fault(kind, "queryPayOutResult", nth=(1,), retry_after=2, hang_seconds=60)
        if isinstance(outcome, int):
            response = query(engine_server, "T1", timeout=0.5)
            assert response.status_code == outcome
            if outcome == 429:
                assert response.headers["retry-after"] == "2"
        elif isinstance(outcome, str):
            assert query(engine_server, "T1", timeout=0.5).json()["code"] == outcome
        else:
            with pytest.raises(outcome):
                query(engine_server, "T1", timeout=0.5).json()
        # Only the first call was scripted to fail: the server is healthy for the next one.
        assert query(engine_server, "T1").json()["data"]["status"] == "0000"

    def test_latency_does_not_block_other_requests(self, engine_server: SimulatorServer) -> None:
        sim = engine_server.sim
        sim.add_payout("SLOW")
        sim.add_payout("FAST")
        sim.add_fault("latency", trade_no="SLOW", latency_ms=3000)
        slow: list[int] = []
        thread = threading.Thread(target=lambda: slow.append(query(engine_server, "SLOW").status_code))
        thread.start()
        assert query(engine_server, "FAST", timeout=2.5).json()["code"] == "0000"
        thread.join(timeout=10)
        assert slow == [200]

    @pytest.mark.parametrize("engine", ["fast", "uvicorn"])
    def test_a_hung_call_does_not_hold_up_shutdown(self, engine: str) -> None:
        sim = VexoraSimulator(seed=1)
        sim.add_payout("T1")
        sim.add_fault("hang", hang_seconds=600)
        server = SimulatorServer(sim, engine=engine).start()
        with pytest.raises(httpx.ReadTimeout):
            query(server, "T1", timeout=0.3)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopper.join(timeout=8)
        assert not stopper.is_alive()

    def test_admin_over_http(self, vexora_simulator_server: SimulatorServer) -> None:
        with httpx.Client(base_url=vexora_simulator_server.url, trust_env=False, timeout=5) as admin:
            made = admin.post("/_simulator/payouts", json={"n": 2, "mix": {"failed": 1}}).json()["tradeNos"]
            admin.post("/_simulator/faults", json={"kind": "code_5000", "nth": [1]})
            assert query(vexora_simulator_server, made[0]).json()["code"] == "5000"
            assert query(vexora_simulator_server, made[0]).json()["data"]["status"] == "00029"
            stats = admin.get("/_simulator/stats", params={"trade_no": made[0]}).json()
            assert stats["trades"] == {made[0]: {"queryPayOutResult": 2}}
            assert stats["outcomes"]["queryPayOutResult"] == {"code_5000": 1, "0000": 1}
            assert admin.post("/_simulator/reset", json={}).json()["ok"] is True

    def test_binds_loopback_only(self) -> None:
        with pytest.raises(ValueError, match="loopback"):
            SimulatorServer(VexoraSimulator(), host="0.0.0.0")
        with pytest.raises(ValueError, match="engine"):
            SimulatorServer(VexoraSimulator(), engine="gunicorn")

    def test_keep_alive_and_pipelined_requests_answer_in_order(
        self, vexora_simulator_server: SimulatorServer
    ) -> None:
        sim = vexora_simulator_server.sim
        sim.add_payout("A")
        sim.add_payout("B")
        sim.add_fault("latency", trade_no="A", latency_ms=100)  # A is slow, yet must be answered first
        requests = b""
        for trade_no in ("A", "B"):
            payload = json.dumps(md5_body(sim.secret, tradeNo=trade_no)).encode()
            requests += (
                b"POST /nigeria/v1/vexora/queryPayOutResult HTTP/1.1\r\nHost: x\r\nmerchantNo: "
                + sim.merchant_no.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
                + payload
            )
        with socket.create_connection(("127.0.0.1", vexora_simulator_server.port), timeout=5) as conn:
            conn.sendall(requests)
            received = b""
            while received.count(b'"tradeNo"') < 2:
                chunk = conn.recv(65536)
                assert chunk, "server closed early"
                received += chunk
        assert received.index(b'"tradeNo":"A"') < received.index(b'"tradeNo":"B"')

    def test_port_zero_gives_a_free_port_and_listens_at_once(self) -> None:
        server = SimulatorServer(VexoraSimulator())
        try:
            assert server.port > 0
            with socket.create_connection(("127.0.0.1", server.port), timeout=2):
                pass  # accepted by the backlog before uvicorn even runs
        finally:
            server.socket.close()

    def test_airflow_connection_points_at_the_server(self, vexora_airflow_conn: str) -> None:
        import os

        conn = json.loads(vexora_airflow_conn)
        assert os.environ["AIRFLOW_CONN_VEXORA_DEFAULT"] == vexora_airflow_conn
        assert conn["host"].startswith("http://127.0.0.1:")
        assert conn["host"].endswith("/nigeria")


class TestSessionFixture:
    def test_session_server_serves(self, vexora_simulator_session: SimulatorServer) -> None:
        vexora_simulator_session.sim.reset()
        vexora_simulator_session.sim.add_payout("S1")
        assert query(vexora_simulator_session, "S1").json()["data"]["status"] == "0000"


class TestCallsInFlight:
    def test_peak_and_connections_seen_on_the_wire(self, engine_server: SimulatorServer) -> None:
        sim = engine_server.sim
        sim.add_fault("latency", latency_ms=300)
        sim.add_payout("T1", "success")
        threads = [threading.Thread(target=query, args=(engine_server, "T1")) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = sim.stats()
        # Six clients, each on its own connection, all waiting out the same 300 ms.
        assert (stats["total"], stats["in_flight"], stats["in_flight_peak"]) == (6, 0, 6)
        if engine_server._fast is not None:
            assert stats["connections"] == 6

    def test_a_dropped_call_is_no_longer_in_flight(self, vexora_simulator: VexoraSimulator) -> None:
        # The fast engine owns the connection and sees the client leave; under uvicorn the app
        # keeps working on a hung call until its hang ends, and counts it until then.
        sim = vexora_simulator
        sim.add_fault("hang", hang_seconds=60)
        with sim.serve() as server:
            with pytest.raises(httpx.ReadTimeout):
                query(server, "T1", timeout=0.3)
            deadline = time.monotonic() + 10
            while sim.stats()["in_flight"] and time.monotonic() < deadline:
                time.sleep(0.05)  # the server sees the client go away a moment later
            assert (sim.stats()["in_flight"], sim.stats()["in_flight_peak"]) == (0, 1)
