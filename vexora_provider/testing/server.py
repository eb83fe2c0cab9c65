"""A real HTTP server for the simulator, one worker, loopback only.

Two engines serve the same gateway: ``"fast"`` (default, :mod:`.httpserver`, asyncio + httptools,
~1.5x less server CPU per call) and ``"uvicorn"`` (the ASGI app under uvicorn). The socket is
bound and listening before either starts, so ``port=0`` gets a free port whose number is known (and
printed) at once. In a thread (tests, ``sim.serve()``) or in the foreground (the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn

from vexora_provider.testing.app import SimulatorApp
from vexora_provider.testing.httpserver import FastHttpServer

if TYPE_CHECKING:
    from vexora_provider.testing.simulator import VexoraSimulator

__all__ = ["SimulatorServer", "check_loopback"]


def check_loopback(host: str) -> None:
    """Refuse anything but a loopback address: the admin API has no authentication."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the simulator only binds loopback addresses, not {host!r}")


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: SimulatorApp) -> None:
        super().__init__(config)
        self.sim_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.sim_app.release_hangs()  # hung calls must not hold up the graceful shutdown
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal after shutdown, which kills the CLI with -15; exit cleanly.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class SimulatorServer:
    """The simulator on a real loopback socket; a context manager.

    :param sim: the simulator whose state is served (shared with its in-process transports).
    :param host: a loopback address.
    :param port: TCP port; 0 picks a free one.
    :param log_level: uvicorn's log level.
    :param engine: ``"fast"`` (own asyncio/httptools server) or ``"uvicorn"``.
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
        config = uvicorn.Config(
            self.app,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            backlog=2048,
        )
        self._server = _Uvicorn(config, self.app)
        self._fast = FastHttpServer(sim.gateway, self.socket) if engine == "fast" else None
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
        return self._fast.started if self._fast is not None else bool(self._server.started)

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        """Serve from a daemon thread; return once it accepts connections."""
        if self._fast is not None:
            self._thread = threading.Thread(
                target=self._run_fast, args=(False,), name="vexora-simulator", daemon=True
            )
        else:
            self._thread = threading.Thread(
                target=self._server.run,
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
                self._server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def request_stop(self) -> None:
        """Ask the server to shut down soon (signal-handler safe); also before it has started."""
        self._server.should_exit = True
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
