"""A real HTTP server for the simulator, one worker, loopback only.

Two engines serve the same gateway: ``"fast"`` (default, :mod:`.httpserver`, asyncio + httptools,
~1.5x less server CPU per call) and ``"uvicorn"`` (the ASGI app under uvicorn). The socket is
bound and listening before either starts, so ``port=0`` gets a free port whose number is known (and
printed) at once. In a thread (tests, ``sim.serve()``) or in the foreground (the CLI).

httptools, uvicorn and uvloop come with the ``testing`` extra and are imported only here, when a
server is built, so workers and triggerers never need them. Without them, building a server
raises :class:`SimulatorDependencyError` naming the extra.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import signal
import socket
import threading
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

from vexora_provider.testing.app import SimulatorApp

if TYPE_CHECKING:
    from vexora_provider.testing.httpserver import FastHttpServer
    from vexora_provider.testing.simulator import VexoraSimulator
    from vexora_provider.testing.uvicornserver import UvicornServer

__all__ = ["TESTING_EXTRA", "SimulatorDependencyError", "SimulatorServer", "check_loopback"]

TESTING_EXTRA = "airflow-provider-vexora[testing]"


class SimulatorDependencyError(ImportError):
    """The simulator's HTTP server needs a package of the ``testing`` extra that is not installed.

    :param package: the missing package, e.g. ``"httptools"``.
    """

    def __init__(self, package: str) -> None:
        super().__init__(
            f"serving the Vexora simulator needs {package}, which is not installed: "
            f"install the 'testing' extra with  pip install '{TESTING_EXTRA}'  "
            "(the in-process simulator, sim.transport(), works without it)",
            name=package,
        )
        self.package = package


def _load(module: str, package: str) -> ModuleType:
    """Import one of our server modules, turning its missing third-party ``package`` into advice."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != package:
            raise
        raise SimulatorDependencyError(package) from exc


def check_loopback(host: str) -> None:
    """Refuse anything but a loopback address: the admin API has no authentication."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the simulator only binds loopback addresses, not {host!r}")


class SimulatorServer:
    """The simulator on a real loopback socket; a context manager.

    :param sim: the simulator whose state is served (shared with its in-process transports).
    :param host: a loopback address.
    :param port: TCP port; 0 picks a free one.
    :param log_level: uvicorn's log level.
    :param engine: ``"fast"`` (own asyncio/httptools server) or ``"uvicorn"``.
    :raises SimulatorDependencyError: the engine's package (``testing`` extra) is not installed.
    """

    def __init__(
        self,
        sim: VexoraSimulator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
        engine: str = "fast",
    ) -> None:
        if engine not in ("fast", "uvicorn"):
            raise ValueError(f"unknown engine {engine!r}; expected 'fast' or 'uvicorn'")
        check_loopback(host)
        # Before the socket is bound: a missing package must not leave a listening port behind.
        engine_module = (
            _load("vexora_provider.testing.httpserver", "httptools")
            if engine == "fast"
            else _load("vexora_provider.testing.uvicornserver", "uvicorn")
        )
        self.sim = sim
        self.app = SimulatorApp(sim.gateway)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        # Listening now (uvicorn listens again later) lets clients connect as soon as the URL is
        # printed: their connections wait in the backlog until the loop accepts them.
        self.socket.listen(2048)
        self.host = host
        self.port: int = self.socket.getsockname()[1]
        self._fast: FastHttpServer | None = None
        self._uvicorn: UvicornServer | None = None
        if engine == "fast":
            self._fast = engine_module.FastHttpServer(sim.gateway, self.socket)
        else:
            self._uvicorn = engine_module.uvicorn_server(self.app, log_level)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL without region, e.g. ``http://127.0.0.1:40123``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def base_url(self, region: str = "nigeria") -> str:
        """Base URL including the region path, what a connection's ``host`` holds."""
        return f"{self.url}/{region}"

    def airflow_connection(self, region: str = "nigeria", **extra: Any) -> str:
        """Airflow's JSON form of a ``vexora`` connection to this server."""
        return self.sim.airflow_connection(self.url, region, **extra)

    def airflow_env(self, conn_id: str = "vexora_default", region: str = "nigeria") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": <json>}`` pointing at this server."""
        return self.sim.airflow_env(conn_id, self.url, region)

    def _run_fast(self, signals: bool) -> None:
        assert self._fast is not None
        fast = self._fast

        async def main() -> None:
            if signals:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, fast.request_stop)
            await fast.serve()

        try:
            import uvloop

            factory: Any = uvloop.new_event_loop
        except ImportError:  # pragma: no cover - uvloop is optional
            factory = None
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())

    @property
    def started(self) -> bool:
        if self._fast is not None:
            return self._fast.started
        assert self._uvicorn is not None
        return bool(self._uvicorn.started)

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        """Serve from a daemon thread; return once it accepts connections."""
        if self._fast is not None:
            self._thread = threading.Thread(
                target=self._run_fast, args=(False,), name="vexora-simulator", daemon=True
            )
        else:
            assert self._uvicorn is not None
            self._thread = threading.Thread(
                target=self._uvicorn.run,
                kwargs={"sockets": [self.socket]},
                name="vexora-simulator",
                daemon=True,
            )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator server did not start")
            time.sleep(0.005)
        return self

    def run(self) -> None:
        """Serve in the foreground until SIGINT/SIGTERM (the CLI)."""
        try:
            if self._fast is not None:
                self._run_fast(True)
            else:
                assert self._uvicorn is not None
                self._uvicorn.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def request_stop(self) -> None:
        """Ask the server to shut down soon (signal-handler safe); also before it has started."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._fast is not None:
            self._fast.request_stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down (hung calls are dropped at once) and wait for the thread."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.socket.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
