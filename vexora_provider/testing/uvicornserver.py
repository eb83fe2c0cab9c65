"""The simulator's ASGI app under uvicorn (``engine="uvicorn"``); imported only for that engine.

uvicorn comes with the ``testing`` extra; :mod:`.server` imports this module lazily so that the
rest of the simulator works without it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator

import uvicorn

from vexora_provider.testing.app import SimulatorApp

__all__ = ["UvicornServer", "uvicorn_server"]


class UvicornServer(uvicorn.Server):
    """uvicorn's server with two changes for the simulator.

    :param config: uvicorn's configuration, holding the app.
    :param app: the simulator app, whose hung calls are released at shutdown.
    """

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


def uvicorn_server(app: SimulatorApp, log_level: str) -> UvicornServer:
    """A uvicorn server for ``app`` that serves a socket the caller has bound already."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        backlog=2048,
    )
    return UvicornServer(config, app)
