"""The request shape and the reading of answers, shared by every hook path.

One request shape (``POST`` JSON of string fields plus ``sign``, header ``merchantNo``), and one
reading of what came back -- an :class:`Answer` (status, body, ``Retry-After``) or a
:class:`TransportFailure` -- into a result or a typed error whose :class:`Permanence` is decided
here, once. The sync and async senders produce the same two things, so nothing below depends on
which HTTP library carried the bytes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vexora_provider._urls import ProxyURL
from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import (
    Permanence,
    VexoraAPIError,
    VexoraAuthError,
    VexoraError,
    VexoraHTTPError,
    VexoraResponseFormatError,
    VexoraTransportError,
)
from vexora_provider.hooks import _retry
from vexora_provider.models import Balance, PayoutStatus, decode_envelope, parse_balance, parse_payout_status
from vexora_provider.signing import signed_body, timestamp_ms
from vexora_provider.trade_nos import MAX_TRADE_NO_LENGTH, clean_trade_no, validate_trade_no

__all__ = [
    "AUTH_HINT",
    "BALANCE_PATH",
    "DISBURSEMENTS_PATH",
    "MAX_TRADE_NO_LENGTH",
    "PAYOUT_STATUS_PATH",
    "UNSENT_KINDS",
    "Answer",
    "FetchStats",
    "TransportFailure",
    "clean_trade_no",
    "read_balance",
    "read_created",
    "read_envelope",
    "read_lookup",
    "read_status",
    "request_headers",
    "shorten",
    "signed_json",
    "transport_error",
    "validate_trade_no",
]

PAYOUT_STATUS_PATH = "/v1/vexora/queryPayOutResult"
BALANCE_PATH = "/v1/vexora/queryBalance"
DISBURSEMENTS_PATH = "/v1/vexora/disbursements"
AUTH_HINT = "check the merchant number (login) and the app secret (password)"


@dataclass
class FetchStats:
    """
    Counters of one session (or sync hook), for progress logs; plain numbers only.

    :param requested: calls started (trade numbers taken, balance queries).
    :param succeeded: calls that returned a result.
    :param failed: calls that ended in an error (after retries).
    :param retries: extra attempts made after transient failures.
    :param rate_limited: HTTP 429 answers seen.
    :param http_errors: HTTP error answers seen (any non-2xx, 429 included).
    :param transport_errors: timeouts and connection failures seen.
    :param duplicates: entries of a bulk stream not fetched because they repeat a trade number.
    :param started_at: ``time.monotonic()`` when counting started.
    """

    requested: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0
    http_errors: int = 0
    transport_errors: int = 0
    duplicates: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, int | float]:
        """Return the counters plus ``elapsed_s`` as a plain dict."""
        data: dict[str, int | float] = asdict(self)
        data["elapsed_s"] = round(time.monotonic() - self.started_at, 3)
        return data


@dataclass(slots=True)
class Answer:
    """
    What the gateway sent back, whatever library carried it.

    :param status: the HTTP status.
    :param content: the body, already decoded from any ``Content-Encoding``.
    :param retry_after: the ``Retry-After`` header, if any.
    """

    status: int
    content: bytes
    retry_after: str | None = None


class TransportFailure(Exception):
    """
    No answer came back; raised by a sender, turned into a typed error by :func:`transport_error`.

    :param kind: one of ``connect_timeout``, ``read_timeout``, ``write_timeout``, ``pool_timeout``,
        ``refused``, ``connect``, ``closed``, ``reset``, ``read``, ``tls_verify``, ``proxy``,
        ``unsupported``, ``other``.
    :param detail: the library's words (never holds a secret: none is ever given to the library
        in a URL or header).
    :param status: for ``proxy``: the HTTP status the proxy answered the tunnel request with.
    """

    def __init__(self, kind: str, detail: str = "", *, status: int | None = None) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail
        self.status = status


def request_headers(config: VexoraConfig) -> dict[str, str]:
    # Only these: connection extras are configuration, never headers.
    return {"merchantNo": config.merchant_no, "Content-Type": "application/json"}


def signed_json(fields: Mapping[str, str], secret: str) -> bytes:
    """Return the JSON body: ``fields`` plus a fresh ``timestamp`` and the ``sign`` over both.

    Called once per try, so a retry after a long backoff never carries a stale timestamp.
    """
    body = signed_body({**fields, "timestamp": timestamp_ms()}, secret)
    return json.dumps(body, separators=(",", ":")).encode()


def shorten(text: str, limit: int = 160) -> str:
    """Cut a library's message to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_http(answer: Answer, trade_no: str | None) -> None:
    status = answer.status
    if 200 <= status < 300:
        return
    transient = status == 429 or status >= 500
    retry_after = _retry.parse_retry_after(answer.retry_after) if transient else None
    raise VexoraHTTPError(
        http_status=status,
        retry_after=retry_after,
        trade_no=trade_no,
        permanence=Permanence.TRANSIENT if transient else Permanence.CALL,
    )


def read_envelope(answer: Answer, *, trade_no: str | None, query: bool) -> Any:
    """Return ``data`` of a ``0000`` answer or raise the typed error for any other answer."""
    _check_http(answer, trade_no)
    try:
        envelope = decode_envelope(answer.content, trade_no=trade_no)
    except VexoraResponseFormatError as err:
        # A body that is not the envelope at all is what a proxy error page or a truncated
        # answer looks like: worth another try. A well-formed envelope with odd ``data`` is
        # deterministic and fails at once (see the readers below).
        err.permanence = Permanence.TRANSIENT
        raise
    code = envelope.code
    if code == "0000":
        return envelope.data
    if code == "8000" and not query:
        raise VexoraAuthError(
            f"gateway refused the request with code 8000 ({envelope.msg or 'no msg'}): {AUTH_HINT}",
            code=code,
            msg=envelope.msg,
            trade_no=trade_no,
        )
    # 5000 is a gateway fault; 8000 on a status query means the *query* failed, not the payout
    # (whether the credentials are to blame is found out once per session by the driver).
    transient = code == "5000" or (code == "8000" and query)
    raise VexoraAPIError(
        code=code,
        msg=envelope.msg,
        trade_no=trade_no,
        permanence=Permanence.TRANSIENT if transient else Permanence.CALL,
    )


def read_status(answer: Answer, trade_no: str, config: VexoraConfig) -> PayoutStatus:
    """Return the payout status in ``answer`` or raise the typed error it amounts to."""
    data = read_envelope(answer, trade_no=trade_no, query=True)
    return parse_payout_status(data, trade_no=trade_no, status_map=config.status_map, tz=config.timezone)


# How the gateway words "no payout has this trade number" in the msg of a code 8000 answer to a
# status query (the code alone also means "the query failed"). Only this wording lets a create
# go ahead; any other 8000 is a failed query, after which nothing is sent.
ORDER_MISSING = re.compile(
    r"(?:order|trade\s*no)\s*(?:does\s*)?not\s*(?:exist|found)|订单不存在", re.IGNORECASE
)


def read_lookup(answer: Answer, trade_no: str, config: VexoraConfig) -> PayoutStatus | None:
    """Return the payout in ``answer``, ``None`` when the gateway says it has no such payout."""
    try:
        return read_status(answer, trade_no, config)
    except VexoraAPIError as err:
        if err.code == "8000" and ORDER_MISSING.search(err.msg):
            return None
        raise


def read_created(answer: Answer, trade_no: str, config: VexoraConfig) -> PayoutStatus:
    """Return the payout a ``disbursements`` answer reports, or raise what the answer amounts to."""
    try:
        data = read_envelope(answer, trade_no=trade_no, query=True)
    except VexoraAPIError as err:
        # Code 8000 to a create is a refusal of this payout (balance, amount, duplicate, or the
        # credentials: the status query that follows tells which), never proof of bad credentials.
        if err.code != "5000":
            err.permanence = Permanence.CALL
        raise
    return parse_payout_status(data, trade_no=trade_no, status_map=config.status_map, tz=config.timezone)


def read_balance(answer: Answer) -> Balance:
    """Return the balance in ``answer`` or raise the typed error it amounts to."""
    return parse_balance(read_envelope(answer, trade_no=None, query=False))


_CONNECT_KINDS = frozenset({"connect_timeout", "refused", "connect"})
#: Transport failures of requests that never reached the gateway: no connection (or proxy
#: tunnel) was ever established, so no byte of the body was sent and sending it again is safe.
UNSENT_KINDS = _CONNECT_KINDS | {"pool_timeout", "proxy", "tls_verify", "unsupported"}

# What each kind of transport failure says; ``peer`` is the proxy for connect failures through
# one (the connection we open is the proxy's), ``via`` names the proxy for the others.
_REASONS: dict[str, str] = {
    "connect_timeout": "connect timeout after {config.connect_timeout:g}s to {peer}",
    "read_timeout": "read timeout after {config.read_timeout:g}s from {host}{via}",
    "write_timeout": "write timeout to {host}{via}",
    "pool_timeout": "timeout waiting for a connection to {host}{via}",
    "refused": "connection refused by {peer}",
    "connect": "cannot connect to {peer}: {detail}",
    "closed": "connection to {host}{via} closed before a complete answer: {detail}",
    "reset": "connection reset by {host}{via}",
    "read": "read error from {host}{via}: {detail}",
    "tls_verify": (
        "TLS certificate of {host} is not trusted ({detail}); if {host} uses a private CA, set the "
        "connection extra ca_bundle to the path of that CA's PEM file"
    ),
    "unsupported": "cannot send to {config.base_url}: {detail}",
}
_PERMANENCE = {"tls_verify": Permanence.CONNECTION, "unsupported": Permanence.CONNECTION}


def transport_error(
    failure: TransportFailure, config: VexoraConfig, proxy: ProxyURL | None, trade_no: str | None
) -> VexoraError:
    """Return the typed error for a request that got no answer, naming the host (and proxy)."""
    host = urlsplit(config.base_url).netloc
    kind = failure.kind
    if kind == "proxy":
        reason, permanence = _proxy_refusal(failure.status, host, proxy)
        return VexoraTransportError(reason, kind=kind, trade_no=trade_no, permanence=permanence)
    reason = _REASONS.get(kind, "{detail} talking to {host}{via}").format(
        config=config,
        host=host,
        peer=f"proxy {proxy.url}" if proxy and kind in _CONNECT_KINDS else host,
        via=f" via proxy {proxy.url}" if proxy and kind not in _CONNECT_KINDS else "",
        detail=shorten(failure.detail) or "unexpected failure",
    )
    permanence = _PERMANENCE.get(kind, Permanence.TRANSIENT)
    return VexoraTransportError(reason, kind=kind, trade_no=trade_no, permanence=permanence)


def _proxy_refusal(status: int | None, host: str, proxy: ProxyURL | None) -> tuple[str, Permanence]:
    name = f"proxy {proxy.url}" if proxy else "the proxy"
    if status == 407:
        return (
            f"{name} asks for credentials (HTTP 407): put them in the proxy URL, "
            "http://user:password@host:port",
            Permanence.CONNECTION,
        )
    if status is not None and status >= 500:
        return f"{name} could not reach {host} (HTTP {status})", Permanence.TRANSIENT
    shown = f"HTTP {status}" if status is not None else "no status"
    return (
        f"{name} refused the tunnel to {host} ({shown}); ask its administrators to allow it, "
        "or set NO_PROXY if Vexora is reachable directly",
        Permanence.CONNECTION,
    )
