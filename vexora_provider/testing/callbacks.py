"""Status-change callbacks: POST the signed notification to the payout's ``notifyUrl``.

Vexora retries a callback that is not answered with plain ``OK`` 8 times over 24 hours
(2 s, 5 s, 10 s, 30 s, 1 h, 3 h, 3 h, 3 h). ``time_scale`` compresses that schedule so a test can
watch every retry in milliseconds. Only loopback URLs are called: this is a test tool, it must
never post anywhere else.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from vexora_provider.signing import signed_body
from vexora_provider.testing.regions import DEFAULT_REGION, REGION_VARIANTS
from vexora_provider.testing.state import PARTIAL, SUCCESS

if TYPE_CHECKING:
    from vexora_provider.testing.state import Payout, SimulatorState

__all__ = ["DEFAULT_SCHEDULE", "CallbackDispatcher", "Delivery", "is_loopback_url"]

DEFAULT_SCHEDULE: tuple[float, ...] = (2, 5, 10, 30, 3600, 10800, 10800, 10800)


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` is http(s) to this machine (``localhost``, 127.0.0.0/8 or ``::1``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Delivery:
    """One callback attempt as the receiver saw it.

    :param trade_no: the payout.
    :param attempt: 1 for the first try, 2.. for retries.
    :param ok: the receiver answered HTTP 200 with body ``OK``.
    :param status: receiver's HTTP status (``None`` if the connection failed or was skipped).
    :param error: why it failed, if it did.
    :param body: the signed notification that was sent.
    :param at: Unix time the attempt ended.
    """

    trade_no: str
    url: str
    attempt: int
    ok: bool
    status: int | None
    error: str | None
    body: dict[str, str]
    at: float = 0.0


@dataclass
class CallbackDispatcher:
    """Background thread that sends callbacks and retries them on Vexora's schedule.

    :param state: where payouts and merchant secrets live; the dispatcher listens to it.
    :param schedule: seconds between retries (Vexora's 8-step schedule by default).
    :param time_scale: multiplier for ``schedule`` (``0.001`` turns 24 h into 24 s).
    :param timeout: seconds to wait for the receiver, like Vexora's ~10 s.
    :param sweep_interval: how often payouts timed by ``pending_seconds`` are checked, so their
        callback fires even when nobody polls them.
    """

    state: SimulatorState
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    time_scale: float = 1.0
    timeout: float = 10.0
    sweep_interval: float = 0.1
    deliveries: list[Delivery] = field(default_factory=list)
    _queue: list[tuple[float, int, int, str, dict[str, str]]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    _stop: bool = False
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.state.listeners.append(self.on_status_change)

    def body_for(self, payout: Payout) -> dict[str, str]:
        """The signed notification for the payout's current status."""
        merchant = self.state.merchants[payout.merchant_no]
        paid = payout.status in (SUCCESS, PARTIAL)
        fields = {
            "platFormTradeNo": payout.platform_trade_no,
            "tradeNo": payout.trade_no,
            "amount": str(payout.pay_amount if paid else payout.order_amount),
            "status": payout.status,
            "message": payout.message,
        }
        if paid and payout.finished_at is not None:
            from vexora_provider.testing.gateway import Gateway  # avoid an import cycle at load time

            variant = REGION_VARIANTS.get(payout.region or "", DEFAULT_REGION)
            fields["successTime"] = Gateway.local_time(payout.finished_at, variant)
        return signed_body(fields, merchant.secret)

    def on_status_change(self, payout: Payout) -> None:
        if not payout.notify_url:
            return
        self._push(0.0, 1, payout.notify_url, self.body_for(payout))

    def redeliver(self, trade_no: str) -> None:
        """Send the payout's current notification again now, as Vexora does when an ``OK`` was lost.

        It is signed and retried like any callback; raises ``KeyError`` for an unknown payout and
        ``ValueError`` for one without a ``notifyUrl``.
        """
        payout = self.state.payouts[trade_no]
        if not payout.notify_url:
            raise ValueError(f"payout {trade_no!r} has no notifyUrl")
        self._push(0.0, 1, payout.notify_url, self.body_for(payout))

    def _push(self, delay: float, attempt: int, url: str, body: dict[str, str]) -> None:
        with self._cond:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._seq), attempt, url, body))
            self._cond.notify()
        self.start()

    def start(self) -> None:
        """Start the thread (idempotent; payouts with a ``notifyUrl`` start it on their own)."""
        with self._cond:
            if self._thread is not None or self._stop:
                return
            self._thread = threading.Thread(target=self._run, name="vexora-sim-callbacks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread; callbacks still queued are dropped."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        """Block until at least ``count`` attempts were made (or ``timeout``); return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.deliveries) < count and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(min(left, 0.05))
            return list(self.deliveries)

    def _run(self) -> None:
        next_sweep = 0.0
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            while True:
                with self._cond:
                    if self._stop:
                        return
                    now = time.monotonic()
                    ready = self._queue and self._queue[0][0] <= now
                    job = heapq.heappop(self._queue) if ready else None
                    if job is None:
                        until = self._queue[0][0] - now if self._queue else self.sweep_interval
                        self._cond.wait(max(0.0, min(until, next_sweep - now, self.sweep_interval)))
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_interval
                    self.state.sweep()
                if job is not None:
                    self._deliver(client, *job[2:])

    def _deliver(self, client: httpx.Client, attempt: int, url: str, body: dict[str, str]) -> None:
        status: int | None = None
        error: str | None = None
        if not is_loopback_url(url):
            error = "skipped: the simulator only calls loopback URLs"
        else:
            try:
                response = client.post(url, json=body)
                status = response.status_code
                if status != 200 or response.text.strip() != "OK":
                    error = f"receiver answered {status} {response.text[:60]!r}, expected 200 'OK'"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        ok = error is None
        with self._cond:
            delivery = Delivery(body["tradeNo"], url, attempt, ok, status, error, body, time.time())
            self.deliveries.append(delivery)
            self._cond.notify_all()
        retryable = not ok and is_loopback_url(url)
        if retryable and attempt <= len(self.schedule):
            self._push(self.schedule[attempt - 1] * self.time_scale, attempt + 1, url, body)
