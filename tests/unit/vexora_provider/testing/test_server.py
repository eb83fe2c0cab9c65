"""The server's third-party packages (the ``testing`` extra) are optional until a server is built."""

from __future__ import annotations

import socket
import sys

import pytest

from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.server import TESTING_EXTRA, SimulatorDependencyError, SimulatorServer

ENGINES = [
    ("fast", "httptools", "vexora_provider.testing.httpserver"),
    ("uvicorn", "uvicorn", "vexora_provider.testing.uvicornserver"),
]


def _uninstall(monkeypatch: pytest.MonkeyPatch, package: str, module: str) -> None:
    """Make ``import package`` fail as it does when the package is not installed."""
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.delitem(sys.modules, module, raising=False)


class TestSimulatorDependencyError:
    def test_names_the_package_and_the_extra(self) -> None:
        error = SimulatorDependencyError("httptools")
        assert isinstance(error, ImportError)
        assert (error.package, error.name) == ("httptools", "httptools")
        assert f"pip install '{TESTING_EXTRA}'" in str(error)
        assert TESTING_EXTRA == "airflow-provider-vexora[testing]"


class TestSimulatorServer:
    @pytest.mark.parametrize(("engine", "package", "module"), ENGINES)
    def test_missing_engine_package_is_named_before_any_port_is_bound(
        self, engine: str, package: str, module: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _uninstall(monkeypatch, package, module)
        bound: list[object] = []
        monkeypatch.setattr(socket.socket, "bind", lambda *args: bound.append(args))
        with VexoraSimulator(seed=1) as sim, pytest.raises(SimulatorDependencyError) as exc:
            SimulatorServer(sim, engine=engine)
        assert exc.value.package == package
        assert bound == []

    @pytest.mark.parametrize(("engine", "package", "module"), ENGINES)
    def test_other_engine_needs_only_its_own_package(
        self, engine: str, package: str, module: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _uninstall(monkeypatch, package, module)
        other = "uvicorn" if engine == "fast" else "fast"
        with VexoraSimulator(seed=1) as sim, sim.serve(engine=other) as server:
            assert server.started

    def test_in_process_simulator_needs_no_server_package(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for _, package, module in ENGINES:
            _uninstall(monkeypatch, package, module)
        monkeypatch.setitem(sys.modules, "uvloop", None)
        import httpx

        with VexoraSimulator(seed=1) as sim:
            sim.add_payout("T1", "success")
            client = httpx.Client(transport=sim.transport(), base_url="http://sim/nigeria")
            reply = client.post(
                "/v1/vexora/queryPayOutResult", json=sim.signed(tradeNo="T1"), headers=sim.headers()
            )
        assert reply.json()["data"]["status"] == "0000"
