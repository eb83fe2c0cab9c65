"""In-process httpx transports: a client talks to the simulator with no socket at all.

Socket-level faults cannot happen without a socket, so they are emulated by raising the exception
a real httpx client gets from the loopback server: ``httpx.ReadTimeout`` for a hang the client's
read timeout gives up on, ``httpx.RemoteProtocolError`` for a truncated body, ``httpx.ReadError``
for a connection reset. Delays are really slept (``asyncio.sleep`` in the async transport), capped
by the request's read timeout, unless the transport is built with ``sleep=False``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from vexora_provider.testing.gateway import Gateway, Reply

__all__ = ["AsyncSimulatorTransport", "SimulatorTransport"]


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout") or {}
    value = timeout.get("read")
    return float(value) if value is not None else None


def _plan(reply: Reply, request: httpx.Request) -> tuple[float, Exception | None]:
    """Return how long to wait and which exception (if any) ends the call."""
    limit = _read_timeout(request)
    wait = reply.delay + (reply.hang_seconds if reply.action == "hang" else 0.0)
    if limit is not None and wait > limit:
        return limit, httpx.ReadTimeout("timed out", request=request)
    if reply.action == "hang":
        return wait, httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    if reply.action == "truncated":
        sent, total = len(reply.body) // 2, len(reply.body)
        text = (
            "peer closed connection without sending complete message body "
            f"(received {sent} bytes, expected {total})"
        )
        return wait, httpx.RemoteProtocolError(text, request=request)
    if reply.action == "reset":
        return wait, httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
    return wait, None


def _response(reply: Reply, request: httpx.Request) -> httpx.Response:
    headers = [(b"content-type", reply.content_type), *reply.headers]
    return httpx.Response(reply.status, headers=headers, content=reply.body, request=request)


class SimulatorTransport(httpx.BaseTransport):
    """Sync transport for ``httpx.Client(transport=...)``.

    :param gateway: the simulator's request handler (``VexoraSimulator.gateway``).
    :param sleep: really wait out delays and timeouts; ``False`` raises/answers at once.
    """

    def __init__(self, gateway: Gateway, *, sleep: bool = True) -> None:
        self.gateway = gateway
        self.sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        url = request.url
        reply = self.gateway.handle(
            request.method, url.path, request.headers.get("merchantNo"), body, url.query.decode()
        )
        try:
            wait, error = _plan(reply, request)
            if self.sleep and wait > 0:
                time.sleep(wait)
            if error is not None:
                raise error
            return _response(reply, request)
        finally:
            self.gateway.finished(reply)


class AsyncSimulatorTransport(httpx.AsyncBaseTransport):
    """Async transport for ``httpx.AsyncClient(transport=...)``; delays never block the loop.

    :param gateway: the simulator's request handler (``VexoraSimulator.gateway``).
    :param sleep: really wait out delays and timeouts; ``False`` raises/answers at once.
    """

    def __init__(self, gateway: Gateway, *, sleep: bool = True) -> None:
        self.gateway = gateway
        self.sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        url = request.url
        reply = self.gateway.handle(
            request.method, url.path, request.headers.get("merchantNo"), body, url.query.decode()
        )
        try:
            wait, error = _plan(reply, request)
            if self.sleep and wait > 0:
                await asyncio.sleep(wait)
            if error is not None:
                raise error
            return _response(reply, request)
        finally:
            self.gateway.finished(reply)
