"""Helpers shared by the hook tests (a module, not conftest, so tests can import it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from vexora_provider.hooks.vexora import VexoraHook

SECRET = "dbecac55466b4958a2d06069fcf49e18"
MERCHANT = "3060414594"
BASE_URL = "https://sandbox-api.vexora.com/nigeria"


def connection_json(**overrides: Any) -> str:
    """Return an ``AIRFLOW_CONN_*`` JSON value for a vexora connection."""
    conn: dict[str, Any] = {"conn_type": "vexora", "host": BASE_URL, "login": MERCHANT, "password": SECRET}
    conn.update(overrides)
    return json.dumps(conn)


class FakeClock:
    """Monotonic time that only moves when code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)


Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def ok_status(trade_no: str, status: str = "0015", **data: Any) -> httpx.Response:
    payload = {"tradeNo": trade_no, "platFormTradeNo": "P" + trade_no, "status": status, **data}
    return httpx.Response(200, json={"code": "0000", "msg": "success", "success": True, "data": payload})


def envelope(code: str, msg: str = "failed", data: Any = None) -> httpx.Response:
    return httpx.Response(200, json={"code": code, "msg": msg, "success": code == "0000", "data": data})


@dataclass
class ScriptedGateway:
    """A handler for ``httpx.MockTransport``: scripted replies per trade, default ``0015``."""

    script: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    balance: list[Reply] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        if request.url.path.endswith("/queryBalance"):
            queue, key = self.balance, "balance"
        else:
            key = body["tradeNo"]
            queue = self.script.get(key, [])
        reply: Reply = (
            queue.pop(0)
            if queue
            else (
                envelope("0000", "success", {"availableAmount": "1.00"})
                if key == "balance"
                else ok_status(key)
            )
        )
        if isinstance(reply, Exception):
            raise reply
        if callable(reply) and not isinstance(reply, httpx.Response):
            return reply(request)
        return reply

    def calls_for(self, trade_no: str) -> int:
        return sum(1 for r in self.requests if json.loads(r.content).get("tradeNo") == trade_no)

    def signatures(self) -> list[str]:
        return [json.loads(r.content)["sign"] for r in self.requests]


BAD_TRADE_NOS = ["", "   ", "x" * 33, "a\nb", "tab\there", "nul\x00", 12.5, True, None, b"\xff"]

TRANSIENT_REPLIES: dict[str, Any] = {
    "http-500": lambda: httpx.Response(500, text="oops"),
    "http-502": lambda: httpx.Response(502, text="<html>bad gateway</html>"),
    "http-503": lambda: httpx.Response(503),
    "http-429": lambda: httpx.Response(429, text="Too Many Requests"),
    "code-5000": lambda: envelope("5000", "system exception"),
    "code-8000": lambda: envelope("8000", "request failed"),
    "read-timeout": lambda: httpx.ReadTimeout("timed out"),
    "connect-timeout": lambda: httpx.ConnectTimeout("timed out"),
    "connect-refused": lambda: httpx.ConnectError("[Errno 111] Connection refused"),
    "reset": lambda: httpx.ReadError("[Errno 104] Connection reset by peer"),
    "truncated": lambda: httpx.RemoteProtocolError(
        "peer closed connection without sending complete message body"
    ),
    "not-json": lambda: httpx.Response(200, text="<html>proxy error</html>"),
    "no-code": lambda: httpx.Response(200, json={"msg": "what"}),
}


def hook_with(gateway: ScriptedGateway, conn_id: str = "vexora_default") -> VexoraHook:
    """A ``VexoraHook`` on ``conn_id`` whose sync and async clients both talk to ``gateway``."""
    from vexora_provider.hooks.vexora import VexoraHook  # imported late, as conftest's ``hook`` does

    transport = httpx.MockTransport(gateway)
    return VexoraHook(conn_id, transport=transport, async_transport=transport)


def assert_no_secret(*texts: str, signatures: list[str] = ()) -> None:  # type: ignore[assignment]
    # Say which text leaked, never what: a plain ``assert SECRET not in text`` prints the secret.
    for number, text in enumerate(texts):
        leaked = SECRET in text or any(signature in text for signature in signatures)
        assert not leaked, f"text #{number} carries the app secret or a request signature"
