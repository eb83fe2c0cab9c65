"""Vexora's payout callbacks, received on the Airflow API server and turned into asset events.

``POST /vexora/callbacks/{vexora_conn_id}`` is the ``notifyUrl`` to give Vexora. Airflow does not
authenticate plugin apps, and Vexora could not present an Airflow token anyway: the callback's
``sign``, checked in constant time with the app secret of that ``vexora`` connection, is the
route's only authentication. Every other request to this app is refused (the app has no other
route, and no OpenAPI or docs pages).

A valid callback is answered ``200 text/plain OK`` as soon as it is recorded (one database
transaction; Vexora is never called from the request). A final state or an undocumented code
becomes one asset event on ``vexora://<merchant>/payouts``; a pending one is only answered. A
refused callback gets a 4xx (a 5xx when Airflow cannot take it now) and the plain body ``FAIL``,
so Vexora retries it on its own schedule. Logs name the connection, the trade and the reason, and
never contain the body, the ``sign`` or the secret.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from vexora_provider.assets import is_announced, settlement_extra
from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import VexoraError
from vexora_provider.models import PayoutStatus, parse_payout_status
from vexora_provider.plugins._events import AirflowEventSink, Recorded
from vexora_provider.signing import SIGN_FIELD, verify
from vexora_provider.trade_nos import validate_trade_no

__all__ = [
    "MAX_BODY_BYTES",
    "CallbackRefused",
    "ConnectionCache",
    "EventSink",
    "create_app",
    "read_callback",
]

log = logging.getLogger(__name__)

#: Larger bodies are refused unread: a real callback is a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
CONNECTION_TTL = 60.0  # seconds a resolved connection is reused
_RELOAD_AFTER = 5.0  # a wrong sign re-reads a connection older than this (rotated secret)
_CONN_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,250}")
_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")


def _refuse_constant(name: str) -> object:
    raise ValueError(name)


# Numbers become Decimal from their JSON text: the signature is computed over that text, and an
# amount must never pass through float.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


class CallbackRefused(Exception):
    """
    A callback that is answered ``FAIL``.

    :param http_status: the status code of the answer.
    :param reason: why, for the log; never contains the body, the ``sign`` or the secret.
    """

    def __init__(self, http_status: int, reason: str) -> None:
        super().__init__(reason)
        self.http_status = http_status
        self.reason = reason


class EventSink(Protocol):
    """Where announced settlements go; must create at most one event per settlement."""

    def record(self, *, merchant_no: str, status: PayoutStatus, extra: dict[str, Any]) -> Recorded:
        """Create the asset event for ``status`` unless this settlement was announced before."""
        ...


def load_connection(conn_id: str) -> VexoraConfig | None:
    """Resolve a ``vexora`` connection; ``None`` when missing, of another type, or unusable."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    if conn.conn_type != "vexora":
        return None  # never verify with another system's password
    try:
        return VexoraConfig.from_connection(conn, conn_id)  # the connection read above, once
    except VexoraError as exc:
        log.warning("Vexora connection %r cannot check callbacks: %s", conn_id, exc)
        return None


class ConnectionCache:
    """
    Resolved connections for ``ttl`` seconds, so a burst of callbacks reads each connection once.

    :param load: resolves a connection id (``None`` for an unknown one, which is not cached).
    :param ttl: seconds an entry is reused.
    :param size: entries kept at most (least recently used goes first).
    """

    def __init__(
        self,
        load: Callable[[str], VexoraConfig | None] = load_connection,
        *,
        ttl: float = CONNECTION_TTL,
        size: int = 128,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[str, tuple[float, VexoraConfig]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conn_id: str, *, max_age: float | None = None) -> VexoraConfig | None:
        """Return the connection, reloading it when older than ``max_age`` (default: the TTL)."""
        limit = self._ttl if max_age is None else min(max_age, self._ttl)
        with self._lock:
            entry = self._entries.get(conn_id)
            if entry is not None and time.monotonic() - entry[0] < limit:
                self._entries.move_to_end(conn_id)
                return entry[1]
        config = self._load(conn_id)
        with self._lock:
            if config is None:
                self._entries.pop(conn_id, None)
            else:
                self._entries[conn_id] = (time.monotonic(), config)
                self._entries.move_to_end(conn_id)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        return config


def _decode(body: bytes) -> dict[str, Any]:
    try:
        fields = _DECODER.decode(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise CallbackRefused(400, f"body is not JSON ({len(body)} bytes)") from None
    if not isinstance(fields, dict):
        raise CallbackRefused(400, f"body is a JSON {type(fields).__name__}, not an object")
    return fields


def read_callback(
    conn_id: str, body: bytes, connections: ConnectionCache
) -> tuple[VexoraConfig, PayoutStatus]:
    """
    Check a callback and parse it; raise :class:`CallbackRefused` saying why it is refused.

    :param conn_id: the ``vexora`` connection named in the URL.
    :param body: the request body (at most :data:`MAX_BODY_BYTES`).
    :param connections: where connections are resolved.
    """
    if not _CONN_ID_RE.fullmatch(conn_id) or (config := connections.get(conn_id)) is None:
        raise CallbackRefused(404, "no such vexora connection")
    fields = _decode(body)
    offered = fields.get(SIGN_FIELD)
    if not isinstance(offered, str) or not offered:
        raise CallbackRefused(401, "the body has no sign")
    if not verify(fields, config.secret, offered):
        # The secret may have been rotated since the connection was cached: look once more.
        fresh = connections.get(conn_id, max_age=_RELOAD_AFTER)
        if fresh is None or not verify(fields, fresh.secret, offered):
            raise CallbackRefused(401, "wrong sign")
        config = fresh
    try:
        trade_no = validate_trade_no(fields.get("tradeNo"))
    except VexoraError:
        raise CallbackRefused(400, "tradeNo is missing or not a valid trade number") from None
    code = fields.get("status")
    if not isinstance(code, str | int) or isinstance(code, bool) or not _CODE_RE.fullmatch(str(code)):
        raise CallbackRefused(400, f"trade {trade_no!r}: status is missing or not a status code")
    try:
        status = parse_payout_status(
            fields, trade_no=trade_no, status_map=config.status_map, tz=config.timezone
        )
    except VexoraError as exc:
        raise CallbackRefused(400, str(exc)) from None
    return config, status


def _answer(http_status: int) -> PlainTextResponse:
    return PlainTextResponse("OK" if http_status == 200 else "FAIL", status_code=http_status)


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise CallbackRefused(413, f"body larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise CallbackRefused(413, f"body larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)


@dataclass
class CallbackHandler:
    """
    Checks a callback and records its settlement.

    :param sink: where asset events are created.
    :param connections: where connections are resolved.
    """

    sink: EventSink
    connections: ConnectionCache

    def __call__(self, conn_id: str, body: bytes) -> int:
        """Return the HTTP status to answer; raise :class:`CallbackRefused` for a refusal."""
        config, status = read_callback(conn_id, body, self.connections)
        if not is_announced(status):
            return 200  # pending: nothing settled yet
        extra = settlement_extra(status, source="callback")
        try:
            recorded = self.sink.record(merchant_no=config.merchant_no, status=status, extra=extra)
        except Exception as exc:
            # Database messages quote the statement's values: name the failure, not the data.
            log.error(
                "Vexora callback on %r for trade %r not recorded: %s; Vexora will retry it",
                conn_id,
                status.trade_no,
                type(exc).__name__,
            )
            return 500
        if recorded is Recorded.NO_ASSET:
            raise CallbackRefused(
                503,
                f"trade {status.trade_no!r} is {status.state.value}, but Airflow has no active asset "
                f"for merchant {config.merchant_no}: schedule an unpaused DAG on "
                f"payouts_asset({config.merchant_no!r}); Vexora will retry",
            )
        log.info(
            "Vexora callback on %r: trade %r is %s (%s)%s",
            conn_id,
            status.trade_no,
            status.state.value,
            status.status_code,
            ", already announced" if recorded is Recorded.DUPLICATE else "",
        )
        return 200


def create_app(*, sink: EventSink | None = None, connections: ConnectionCache | None = None) -> FastAPI:
    """
    Build the callback app (mounted by Airflow at ``/vexora``).

    :param sink: where asset events go; default: this API server's metadata database.
    :param connections: where connections are resolved; default: Airflow's, cached briefly.
    """
    handler = CallbackHandler(sink or AirflowEventSink(), connections or ConnectionCache())
    # No docs, no OpenAPI schema: nothing but the callback route answers without Airflow auth.
    app = FastAPI(title="Vexora callbacks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/callbacks/{vexora_conn_id}", response_class=PlainTextResponse)
    async def receive_callback(vexora_conn_id: str, request: Request) -> PlainTextResponse:
        try:
            body = await _read_capped(request)
            # Connection lookup and the database write block: run them off the event loop.
            return _answer(await run_in_threadpool(handler, vexora_conn_id, body))
        except CallbackRefused as refused:
            log.warning(
                "Vexora callback on %r refused (%d): %s", vexora_conn_id, refused.http_status, refused.reason
            )
            return _answer(refused.http_status)
        except Exception as exc:
            # E.g. the metadata database is down while resolving the connection.
            log.error(
                "Vexora callback on %r failed: %s; Vexora will retry it", vexora_conn_id, type(exc).__name__
            )
            return _answer(500)

    return app
