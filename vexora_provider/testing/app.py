"""The simulator as a raw ASGI application (no framework: it must serve thousands of calls/s).

Socket-level faults need the connection itself. Under uvicorn the ``send`` callable is a bound
method of the request cycle, which holds the asyncio transport; through it the app writes a
truncated response and closes, or aborts with ``SO_LINGER`` 0 so the kernel sends a TCP RST.
Under a server that does not expose the transport, the app falls back to what ASGI allows:
an unfinished body (the server closes the connection) or an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vexora_provider.testing.gateway import Gateway, Reply

__all__ = ["SimulatorApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _transport(send: Send) -> asyncio.Transport | None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    # uvloop's transports are not asyncio.BaseTransport subclasses: check the interface instead.
    if all(hasattr(transport, name) for name in ("write", "close", "abort", "get_extra_info")):
        return transport
    return None


def _reset(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger on with a zero timeout makes close() send RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class SimulatorApp:
    """ASGI 3 application over a :class:`~vexora_provider.testing.gateway.Gateway`.

    :param gateway: the request handler shared with the in-process transports.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._release: asyncio.Event | None = None

    def release_hangs(self) -> None:
        """Drop every hung call now (called on shutdown so a hang never delays it)."""
        if self._release is not None:
            self._release.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        merchant_no = None
        for name, value in scope["headers"]:
            if name == b"merchantno":
                merchant_no = value.decode("latin-1")
                break
        reply = self.gateway.handle(
            scope["method"],
            scope["path"],
            merchant_no,
            body,
            scope.get("query_string", b"").decode("latin-1"),
        )
        try:
            await self._reply(reply, send)
        finally:
            self.gateway.finished(reply)

    async def _reply(self, reply: Reply, send: Send) -> None:
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        if reply.action is not None:
            await self._socket_fault(reply, send)
            return
        headers = [
            (b"content-type", reply.content_type),
            (b"content-length", b"%d" % len(reply.body)),
            *reply.headers,
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _socket_fault(self, reply: Reply, send: Send) -> None:
        transport = _transport(send)
        if reply.action == "hang":
            if self._release is None:
                self._release = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), reply.hang_seconds)
            if transport is not None:
                transport.abort()
                await asyncio.sleep(0)  # let the server see the disconnect before we return
            return
        if reply.action == "reset":
            if transport is None:
                raise ConnectionResetError("simulated connection reset")
            _reset(transport)
            await asyncio.sleep(0)
            return
        # truncated: announce the whole body, send half of it, close.
        half = reply.body[: len(reply.body) // 2]
        head = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(reply.body)
        if transport is not None:
            transport.write(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + half)
            transport.close()
            await asyncio.sleep(0)
            return
        start_headers = [(b"content-type", reply.content_type), (b"content-length", b"%d" % len(reply.body))]
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        await send({"type": "http.response.body", "body": half, "more_body": True})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._release = asyncio.Event()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.release_hangs()
                await send({"type": "lifespan.shutdown.complete"})
                return
