"""A minimal HTTP/1.1 server for the simulator: asyncio protocol + httptools parser.

Why not uvicorn: per request it creates a task, a request cycle and ASGI message dicts, which is
most of the CPU the simulator spends (the gateway itself needs ~35 µs). Answering from the
parser callback, with a timer only when a delay is scripted, costs ~75 µs of server CPU per
call against uvicorn's ~115 µs (``bench/bench_simulator.py``), and owning the transport makes
``reset`` (RST), ``truncated`` (short body, then FIN) and ``hang`` (silence, then abort) exact.
Keep-alive and pipelining are honoured (answers go out in request order); request bodies are
capped at 1 MiB.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING

import httptools

if TYPE_CHECKING:
    from vexora_provider.testing.gateway import Gateway, Reply

__all__ = ["FastHttpServer"]

MAX_BODY = 1 << 20


def _head(
    status: int, content_type: bytes, length: int, extra: tuple[tuple[bytes, bytes], ...], close: bool
) -> bytes:
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b"Unknown"
    lines = [
        b"HTTP/1.1 %d %s" % (status, reason),
        b"content-type: " + content_type,
        b"content-length: %d" % length,
    ]
    lines.extend(name + b": " + value for name, value in extra)
    if close:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


class _Connection(asyncio.Protocol):
    def __init__(self, server: FastHttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[tuple[Reply, bool]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.url = b""
        self.merchant_no: str | None = None
        self.body = bytearray()

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        with self.server.gateway.state.lock:
            self.server.gateway.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        for reply, _ in self.queue:
            self.server.gateway.finished(reply)  # never answered: no longer in flight either
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write_close(400, b"bad request")

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url, self.merchant_no, self.body = b"", None, bytearray()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 10 and name.lower() == b"merchantno":
            self.merchant_no = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > MAX_BODY:
            raise httptools.HttpParserError("body too large")

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self.url)
        reply = self.server.gateway.handle(
            self.parser.get_method().decode("latin-1"),
            url.path.decode("latin-1"),
            self.merchant_no,
            bytes(self.body),
            url.query.decode("latin-1") if url.query else "",
        )
        self.queue.append((reply, self.parser.should_keep_alive()))
        if self.timer is None:
            self._drain()

    # -- answering ---------------------------------------------------------------------------
    def _drain(self) -> None:
        self.timer = None
        while self.queue and self.transport is not None and not self.transport.is_closing():
            reply, keep_alive = self.queue[0]
            wait = reply.delay + (reply.hang_seconds if reply.action == "hang" else 0.0)
            if wait > 0:
                # Later answers on this connection must wait too: HTTP/1.1 answers in order.
                reply.delay, reply.hang_seconds = 0.0, 0.0
                self.timer = asyncio.get_running_loop().call_later(wait, self._drain)
                return
            self.queue.popleft()
            self._answer(reply, keep_alive)
            self.server.gateway.finished(reply)

    def _answer(self, reply: Reply, keep_alive: bool) -> None:
        transport = self.transport
        assert transport is not None
        if reply.action == "hang":
            transport.abort()
        elif reply.action == "reset":
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger on with a zero timeout makes the close an RST instead of a FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        elif reply.action == "truncated":
            head = _head(200, reply.content_type, len(reply.body), (), True)
            transport.write(head + reply.body[: len(reply.body) // 2])
            transport.close()
        else:
            transport.write(
                _head(reply.status, reply.content_type, len(reply.body), reply.headers, not keep_alive)
            )
            transport.write(reply.body)
            if not keep_alive:
                transport.close()

    def _write_close(self, status: int, text: bytes) -> None:
        if self.transport is not None:
            self.transport.write(_head(status, b"text/plain", len(text), (), True) + text)
            self.transport.close()

    def close(self) -> None:
        """Drop the connection now (shutdown): idle, delayed or hung alike."""
        if self.transport is not None:
            self.transport.abort()


class FastHttpServer:
    """Serves a :class:`~vexora_provider.testing.gateway.Gateway` on an already bound socket.

    :param gateway: the request handler shared with the in-process transports.
    :param sock: a bound, listening TCP socket.
    """

    def __init__(self, gateway: Gateway, sock: socket.socket) -> None:
        self.gateway = gateway
        self.sock = sock
        self.connections: set[_Connection] = set()
        self.started = False
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_early = False

    async def serve(self) -> None:
        """Serve until :meth:`request_stop`; then drop every connection (hung ones too)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_early:
            self._stop.set()
        server = await self._loop.create_server(lambda: _Connection(self), sock=self.sock, backlog=2048)
        self.started = True
        try:
            await self._stop.wait()
        finally:
            server.close()
            for connection in list(self.connections):
                connection.close()
            await asyncio.sleep(0)

    def request_stop(self) -> None:
        """Ask :meth:`serve` to return; safe from any thread or a signal handler."""
        self._stop_early = True  # before serve() runs: it returns at once
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
