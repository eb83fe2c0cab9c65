"""Loopback network parts for the proxy and TLS tests: an HTTP proxy and a TLS front.

Both run their own asyncio loop in a thread, so sync and async clients alike can use them, and
both only ever listen on 127.0.0.1.

- :class:`LoopbackProxy` is a small forward proxy: ``CONNECT host:port`` tunnels (what clients do
  for ``https://`` targets) and absolute-form requests (``POST http://host/...``, what they do for
  ``http://`` targets). It records every request it carries and can demand Basic credentials.
- :class:`TlsFront` terminates TLS with a certificate from a test CA and relays the bytes to a
  plain-http server (the simulator), so the real simulator can be reached over ``https://``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter], b: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    await asyncio.gather(_pipe(a[0], b[1]), _pipe(b[0], a[1]))


class _LoopThread:
    """One asyncio server on 127.0.0.1 (port chosen by the OS) in a thread of its own."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> _LoopThread:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handler, "127.0.0.1", 0, ssl=self._ssl), self._loop
        ).result(10)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class LoopbackProxy:
    """
    A forward proxy on loopback that records what it carries.

    :param credentials: ``(user, password)`` to demand as ``Proxy-Authorization: Basic``; a
        request without them gets ``407``.
    """

    credentials: tuple[str, str] | None = None
    tunnels: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)
    refused: int = 0

    def __enter__(self) -> LoopbackProxy:
        self._server = _LoopThread(self._handle).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def requests(self) -> int:
        """Requests carried: one per tunnel opened, plus one per forwarded request."""
        return len(self.tunnels) + len(self.forwarded)

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.credentials is None:
            return True
        token = base64.b64encode(":".join(self.credentials).encode()).decode()
        return headers.get("proxy-authorization", "") == f"Basic {token}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, version = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not self._authorized(headers):
                    self.refused += 1
                    writer.write(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                    )
                    await writer.drain()
                    continue
                if method == "CONNECT":
                    self.tunnels.append(target)
                    host, port = target.rsplit(":", 1)
                    remote = await asyncio.open_connection(host, int(port))
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await writer.drain()
                    await _splice((reader, writer), remote)
                    return
                self.forwarded.append(target)
                upstream = upstream or await self._open(target)
                await self._forward(method, target, version, header_lines, body, upstream, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if upstream is not None:
                upstream[1].close()
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _open(target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        authority = target.split("://", 1)[1].split("/", 1)[0]
        host, port = authority.rsplit(":", 1)
        return await asyncio.open_connection(host, int(port))

    @staticmethod
    async def _forward(
        method: str,
        target: str,
        version: str,
        header_lines: list[str],
        body: bytes,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        writer: asyncio.StreamWriter,
    ) -> None:
        path = "/" + target.split("://", 1)[1].split("/", 1)[1]
        kept = [line for line in header_lines if line and not line.lower().startswith("proxy-")]
        head = "\r\n".join([f"{method} {path} {version}", *kept]) + "\r\n\r\n"
        upstream[1].write(head.encode("latin-1") + body)
        await upstream[1].drain()
        answer = await upstream[0].readuntil(b"\r\n\r\n")
        length = 0
        for line in answer.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        writer.write(answer + await upstream[0].readexactly(length))
        await writer.drain()


class TlsFront:
    """
    TLS on 127.0.0.1 in front of a plain-http server on loopback.

    :param backend_port: the plain server's port.
    :param context: the server-side TLS context (a test CA's certificate for ``localhost``).
    """

    def __init__(self, backend_port: int, context: ssl.SSLContext) -> None:
        self._backend_port = backend_port
        self._server = _LoopThread(self._handle, context)
        self.handshakes = 0

    def __enter__(self) -> TlsFront:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    @property
    def port(self) -> int:
        return self._server.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        try:
            remote = await asyncio.open_connection("127.0.0.1", self._backend_port)
        except OSError:
            writer.close()
            return
        await _splice((reader, writer), remote)
