"""The request shape, answer interpretation and retry decision shared by every hook path.

One request shape (``POST`` JSON of string fields plus ``sign``, header ``merchantNo``), one
reading of the gateway's answers into results or typed errors, and one policy deciding after a
failed try whether to wait and how long -- used alike by the sync hook, the async session and the
bulk stream.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import (
    VexoraAPIError,
    VexoraAuthError,
    VexoraError,
    VexoraHTTPError,
    VexoraInvalidTradeNoError,
    VexoraResponseFormatError,
    VexoraTransportError,
)
from vexora_provider.hooks import _retry
from vexora_provider.models import Balance, PayoutStatus, decode_envelope, parse_balance, parse_payout_status
from vexora_provider.signing import signed_body, timestamp_ms

__all__ = [
    "BALANCE_PATH",
    "MAX_TRADE_NO_LENGTH",
    "PAYOUT_STATUS_PATH",
    "FetchStats",
    "RetryPolicy",
    "check_http",
    "envelope_data",
    "parse_balance_answer",
    "parse_status_answer",
    "request_headers",
    "scrub",
    "signed_json",
    "timeout_for",
    "transport_error",
    "validate_trade_no",
]

# The hook's logger: retries are reported under the name users configure.
log = logging.getLogger("vexora_provider.hooks.vexora")

PAYOUT_STATUS_PATH = "/v1/vexora/queryPayOutResult"
BALANCE_PATH = "/v1/vexora/queryBalance"
MAX_TRADE_NO_LENGTH = 32


def validate_trade_no(trade_no: object) -> str:
    """Return ``trade_no`` if it is 1-32 printable characters, else raise before any request."""
    if not isinstance(trade_no, str):
        raise VexoraInvalidTradeNoError(
            f"a trade number must be a string, got {type(trade_no).__name__}", trade_no=str(trade_no)
        )
    if not trade_no.strip():
        raise VexoraInvalidTradeNoError("a trade number must not be empty or blank", trade_no=trade_no)
    if len(trade_no) > MAX_TRADE_NO_LENGTH:
        raise VexoraInvalidTradeNoError(
            f"a trade number has at most {MAX_TRADE_NO_LENGTH} characters, this has {len(trade_no)}",
            trade_no=trade_no,
        )
    if not trade_no.isprintable():
        raise VexoraInvalidTradeNoError("a trade number must be printable characters only", trade_no=trade_no)
    return trade_no


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
    :param started_at: ``time.monotonic()`` when counting started.
    """

    requested: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0
    http_errors: int = 0
    transport_errors: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, int | float]:
        """Return the counters plus ``elapsed_s`` as a plain dict."""
        data: dict[str, int | float] = asdict(self)
        data["elapsed_s"] = round(time.monotonic() - self.started_at, 3)
        return data


def request_headers(config: VexoraConfig) -> dict[str, str]:
    # Only these: connection extras are configuration and never become headers (unlike HttpHook).
    return {"merchantNo": config.merchant_no, "Content-Type": "application/json"}


def signed_json(fields: dict[str, str], secret: str) -> bytes:
    """Return the JSON body: ``fields`` plus a fresh ``timestamp`` and the ``sign`` over both.

    Called once per try, so a retry after a long backoff never carries a stale timestamp.
    """
    body = signed_body({**fields, "timestamp": timestamp_ms()}, secret)
    return json.dumps(body, separators=(",", ":")).encode()


def timeout_for(config: VexoraConfig, cap: float | None = None) -> httpx.Timeout:
    connect, read = config.connect_timeout, config.read_timeout
    if cap is not None:
        connect, read = min(connect, cap), min(read, cap)
    # No pool timeout: concurrency is bounded by our workers, a queued request is not a failure.
    return httpx.Timeout(connect=connect, read=read, write=read, pool=None)


def scrub(text: str, config: VexoraConfig, limit: int = 160) -> str:
    text = text.replace(config.secret, "***") if config.secret else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def transport_error(exc: httpx.TransportError, config: VexoraConfig, trade_no: str | None) -> VexoraError:
    host = urlsplit(config.base_url).netloc
    detail = str(exc)
    transient = True
    if isinstance(exc, httpx.ConnectTimeout):
        reason = f"connect timeout after {config.connect_timeout:g}s to {host}"
    elif isinstance(exc, httpx.ReadTimeout):
        reason = f"read timeout after {config.read_timeout:g}s from {host}"
    elif isinstance(exc, httpx.WriteTimeout):
        reason = f"write timeout to {host}"
    elif isinstance(exc, httpx.TimeoutException):
        reason = f"timeout waiting for a connection to {host}"
    elif isinstance(exc, httpx.ConnectError):
        refused = "refused" in detail.lower() or "errno 111" in detail.lower()
        reason = f"connection refused by {host}" if refused else f"cannot connect to {host}: {detail}"
    elif isinstance(exc, httpx.RemoteProtocolError):
        reason = f"connection to {host} closed before a complete answer: {detail}"
    elif isinstance(exc, httpx.ReadError):
        reset = "reset" in detail.lower() or "errno 104" in detail.lower()
        reason = f"connection reset by {host}" if reset else f"read error from {host}: {detail}"
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.ProxyError):
        reason, transient = f"cannot send to {config.base_url}: {detail}", False
    else:
        reason = f"{type(exc).__name__} talking to {host}: {detail}"
    return VexoraTransportError(scrub(reason, config), trade_no=trade_no, transient=transient)


def check_http(response: httpx.Response, trade_no: str | None) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    transient = status == 429 or status >= 500
    retry_after = _retry.parse_retry_after(response.headers.get("retry-after")) if transient else None
    raise VexoraHTTPError(http_status=status, retry_after=retry_after, trade_no=trade_no, transient=transient)


def envelope_data(response: httpx.Response, *, trade_no: str | None, query: bool) -> Any:
    """Return ``data`` of a ``0000`` answer or raise the typed error for any other answer."""
    check_http(response, trade_no)
    try:
        envelope = decode_envelope(response.content, trade_no=trade_no)
    except VexoraResponseFormatError as err:
        # A body that is not the envelope at all is what a proxy error page or a truncated
        # answer looks like: worth another try. A well-formed envelope with
        # odd ``data`` is deterministic and fails at once (see _parse_* below).
        err.transient = True
        raise
    code = envelope.code
    if code == "0000":
        return envelope.data
    if code == "8000" and not query:
        raise VexoraAuthError(
            f"gateway refused the request with code 8000 ({envelope.msg or 'no msg'}): "
            "check the merchant number (login) and the app secret (password)",
            code=code,
            trade_no=trade_no,
        )
    # 5000 is a gateway fault; 8000 on a status query means the *query* failed, not the payout.
    transient = code == "5000" or (code == "8000" and query)
    raise VexoraAPIError(code=code, msg=envelope.msg, trade_no=trade_no, transient=transient)


def parse_status_answer(response: httpx.Response, trade_no: str, config: VexoraConfig) -> PayoutStatus:
    data = envelope_data(response, trade_no=trade_no, query=True)
    return parse_payout_status(data, trade_no=trade_no, status_map=config.status_map, tz=config.timezone)


def parse_balance_answer(response: httpx.Response) -> Balance:
    return parse_balance(envelope_data(response, trade_no=None, query=False))


class RetryPolicy:
    """
    What to do after a failed try: count it, give up, or say how long to wait.

    :param max_attempts: total tries, including the first.
    :param stats: counters to update.
    :param pause: called with the seconds a 429 asked for, to hold the whole session.
    """

    def __init__(self, *, max_attempts: int, stats: FetchStats, pause: Callable[[float], None]) -> None:
        self.max_attempts = max_attempts
        self.stats = stats
        self.pause = pause

    def after_failure(self, error: VexoraError, attempt: int) -> float:
        """Return the delay before the next try, or raise ``error`` (with ``attempts``) when done."""
        error.attempts = attempt
        stats = self.stats
        retry_after = None
        if isinstance(error, VexoraHTTPError):
            stats.http_errors += 1
            retry_after = error.retry_after
            if error.http_status == 429:
                stats.rate_limited += 1
        elif isinstance(error, VexoraTransportError):
            stats.transport_errors += 1
        if not error.transient or attempt >= self.max_attempts:
            raise error
        delay = _retry.backoff_delay(attempt)
        if retry_after is not None:
            delay = retry_after
            self.pause(retry_after)
        elif isinstance(error, VexoraHTTPError) and error.http_status == 429:
            # No Retry-After: still slow the whole session down, not just this request.
            self.pause(delay)
        stats.retries += 1
        log.info(
            "Vexora %s failed (%s); retry %d of %d in %.2fs",
            error.trade_no or "request",
            type(error).__name__,
            attempt,
            self.max_attempts - 1,
            delay,
        )
        return delay
