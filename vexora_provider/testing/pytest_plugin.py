"""pytest plugin (entry point ``vexora_simulator``): simulator fixtures for anyone's tests.

Fixtures:

- ``vexora_simulator``: an in-process :class:`VexoraSimulator`, fresh per test;
- ``vexora_simulator_server``: that simulator also served on a loopback port, per test;
- ``vexora_simulator_session``: one loopback server for the whole session (reset it yourself);
- ``vexora_airflow_conn``: sets ``AIRFLOW_CONN_VEXORA_DEFAULT`` to the per-test server;
- ``vexora_airflow_db``: runs ``airflow db migrate`` once per session, for ``dag.test()``.

Configure the per-test simulator with a marker:
``@pytest.mark.vexora_simulator(seed=7, create_pending_polls=0)`` (keyword arguments of
:class:`VexoraSimulator`). Loading this plugin imports neither Airflow nor the server packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from vexora_provider.testing.server import SimulatorServer
    from vexora_provider.testing.simulator import VexoraSimulator

__all__ = [
    "vexora_airflow_conn",
    "vexora_airflow_db",
    "vexora_simulator",
    "vexora_simulator_server",
    "vexora_simulator_session",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vexora_simulator(**kwargs): keyword arguments for the per-test VexoraSimulator"
    )


@pytest.fixture
def vexora_simulator(request: pytest.FixtureRequest) -> Iterator[VexoraSimulator]:
    """A fresh in-process simulator; use ``.transport()`` / ``.async_transport()`` to reach it."""
    from vexora_provider.testing.simulator import VexoraSimulator

    marker = request.node.get_closest_marker("vexora_simulator")
    sim = VexoraSimulator(**(marker.kwargs if marker else {}))
    yield sim
    sim.close()


@pytest.fixture
def vexora_simulator_server(vexora_simulator: VexoraSimulator) -> Iterator[SimulatorServer]:
    """The per-test simulator on ``http://127.0.0.1:<free port>``; ``.sim`` is the simulator."""
    with vexora_simulator.serve() as server:
        yield server


@pytest.fixture(scope="session")
def vexora_simulator_session() -> Iterator[SimulatorServer]:
    """One simulator server for the session (seed 0); call ``server.sim.reset()`` between uses."""
    from vexora_provider.testing.simulator import VexoraSimulator

    with VexoraSimulator(seed=0) as sim, sim.serve() as server:
        yield server


@pytest.fixture
def vexora_airflow_conn(vexora_simulator_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point Airflow connection ``vexora_default`` (region nigeria) at the per-test server."""
    for name, value in vexora_simulator_server.airflow_env().items():
        monkeypatch.setenv(name, value)
    return vexora_simulator_server.airflow_connection()


@pytest.fixture(scope="session")
def vexora_airflow_db() -> str:
    """Create or upgrade Airflow's metadata database once per session; return ``AIRFLOW_HOME``.

    ``dag.test()`` and ``airflow dags test`` need the metadata database. This runs the same
    ``airflow db migrate`` you would run by hand (idempotent, it never drops data) in a
    subprocess with this session's environment, so it works on whatever database that
    environment configures: set ``AIRFLOW_HOME`` to a scratch directory in your ``conftest.py``,
    before anything imports Airflow, to keep tests away from your own ``~/airflow``.
    """
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        pytest.fail(
            f"airflow db migrate failed with exit status {result.returncode}:\n" + "\n".join(output[-30:]),
            pytrace=False,
        )
    return os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
