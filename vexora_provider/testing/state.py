"""In-memory Vexora state: merchants, payouts and their scripted lifecycles.

Every random-looking choice (which payouts fail, amounts, how long they stay pending, the
merchant's credentials) is a hash of ``(seed, trade number, purpose)``, never a draw from one
shared RNG stream: the same seed then gives the same payouts however many clients poll them and
in whatever order their requests arrive.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "FAILED",
    "FINAL_STATES",
    "PARTIAL",
    "PENDING",
    "SUCCESS",
    "ManualClock",
    "Merchant",
    "Payout",
    "SimulatorState",
    "pick_final",
    "unit",
]

SUCCESS, PARTIAL, PENDING, FAILED = "0000", "0001", "0015", "00029"
#: Lifecycle names accepted wherever a final state is asked for; a raw code is accepted too.
FINAL_STATES: dict[str, str | None] = {
    "success": SUCCESS,
    "partial": PARTIAL,
    "failed": FAILED,
    "unknown": "0099",
    "pending": None,  # never leaves 0015: for "still processing after an hour" tests
}
_FAIL_MESSAGES = ("REJECTED_TRANSACTION", "INVALID_ACCOUNT", "ACCOUNT_NAME_MISMATCH", "RISK_CONTROL")
PendingSpec = int | tuple[int, int] | None


def unit(seed: int, *parts: object) -> float:
    """Return a number in [0, 1) fixed by ``seed`` and ``parts`` (order-independent randomness)."""
    text = "\x1f".join([str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2.0**64


def _pick(seed: int, parts: tuple[object, ...], lo: int, hi: int) -> int:
    return lo + int(unit(seed, *parts) * (hi - lo + 1))


def pick_final(seed: int, trade_no: str, mix: Mapping[str, float]) -> str:
    """Return the lifecycle name of ``trade_no`` drawn from the weights in ``mix``."""
    names = list(mix)
    total = sum(mix.values())
    if not names or total <= 0 or any(w < 0 for w in mix.values()):
        raise ValueError("mix needs non-negative weights and at least one positive one")
    roll, acc = unit(seed, trade_no, "final") * total, 0.0
    for name in names:
        acc += mix[name]
        if roll < acc:
            return name
    return names[-1]


def _final_code(final: str) -> str | None:
    return FINAL_STATES.get(final, final)


class ManualClock:
    """A clock tests move by hand, so "pending for 3600 s" needs no sleeping.

    :param start: initial Unix time in seconds.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


@dataclass(slots=True)
class Merchant:
    """A merchant account.

    :param merchant_no: the 10-digit id sent in the ``merchantNo`` header.
    :param secret: the app secret that signs requests and callbacks.
    :param available: balance answered by ``queryBalance``; frozen by created disbursements.
    """

    merchant_no: str
    secret: str
    available: Decimal = Decimal("1000000.00")
    freeze: Decimal = Decimal("0.00")
    unsettled: Decimal = Decimal("0.00")


@dataclass(slots=True)
class Payout:
    """One payout and its scripted lifecycle (pending, then ``final_code``).

    :param trade_no: the merchant's id, the key of the payout.
    :param merchant_no: owner; other merchants get a query failure for it.
    :param final_code: status after the pending phase; ``None`` stays pending forever.
    :param order_amount: amount ordered; ``pay_amount`` is what is disbursed in the end.
    :param pending_polls: answers of ``0015`` before the final code (``None``: not poll-driven).
    :param pending_seconds: seconds after creation before the final code (``None``: not timed).
        With neither set the payout is final on its first query; with both, the first wins.
    :param region: when set, the payout is only visible under that region's path.
    :param notify_url: where status-change callbacks go (loopback only).
    :param created: ``False`` scripts a lifecycle for a payout that ``disbursements`` creates later.
    """

    trade_no: str
    merchant_no: str
    final_code: str | None
    order_amount: Decimal
    pay_amount: Decimal
    platform_trade_no: str
    final_message: str
    pending_polls: int | None = None
    pending_seconds: float | None = None
    created_at: float = 0.0
    region: str | None = None
    notify_url: str | None = None
    created: bool = True
    from_api: bool = False
    polls: int = 0
    status: str = PENDING
    message: str = "in processing"
    finished_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status != PENDING

    def due(self, now: float) -> bool:
        """Whether the pending phase is over (the next look at it turns it final)."""
        if self.final_code is None or self.terminal:
            return False
        if self.pending_polls is None and self.pending_seconds is None:
            return True
        by_polls = self.pending_polls is not None and self.polls > self.pending_polls
        by_time = self.pending_seconds is not None and now - self.created_at >= self.pending_seconds
        return by_polls or by_time

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the admin API and assertions."""
        return {
            "tradeNo": self.trade_no,
            "merchantNo": self.merchant_no,
            "platFormTradeNo": self.platform_trade_no,
            "status": self.status,
            "finalStatus": self.final_code,
            "message": self.message,
            "orderAmount": str(self.order_amount),
            "payAmount": str(self.pay_amount),
            "polls": self.polls,
            "pendingPolls": self.pending_polls,
            "pendingSeconds": self.pending_seconds,
            "region": self.region,
            "notifyUrl": self.notify_url,
            "created": self.created,
            "finishedAt": self.finished_at,
        }


Listener = Callable[[Payout], None]


@dataclass
class SimulatorState:
    """Merchants, payouts and request counters shared by every way of running the simulator.

    :param seed: drives every generated value and probabilistic fault.
    :param clock: returns Unix seconds; pass a :class:`ManualClock` to script time-based lifecycles.
    """

    seed: int = 0
    clock: Callable[[], float] = time.time
    merchants: dict[str, Merchant] = field(default_factory=dict)
    payouts: dict[str, Payout] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- merchants ---------------------------------------------------------------------------
    def add_merchant(self, merchant_no: str | None = None, secret: str | None = None) -> Merchant:
        """Register a merchant; credentials not given are derived from the seed."""
        index = len(self.merchants)
        if merchant_no is None:
            merchant_no = str(_pick(self.seed, ("merchant", index), 10**9, 10**10 - 1))
        if secret is None:
            secret = hashlib.md5(f"{self.seed}/{merchant_no}".encode(), usedforsecurity=False).hexdigest()
        merchant = Merchant(merchant_no, secret)
        with self.lock:
            self.merchants[merchant_no] = merchant
        return merchant

    # -- payouts -----------------------------------------------------------------------------
    def make_payout(
        self,
        trade_no: str,
        merchant_no: str,
        final: str = "success",
        *,
        pending_polls: PendingSpec = None,
        pending_seconds: float | None = None,
        amount: Decimal | str | None = None,
        region: str | None = None,
        notify_url: str | None = None,
        created: bool = True,
        message: str | None = None,
    ) -> Payout:
        """Build (not store) a payout whose unspecified details are derived from the seed."""
        seed = self.seed
        order = (
            Decimal(amount) if amount is not None else Decimal(_pick(seed, (trade_no, "amt"), 1000, 500000))
        )
        if amount is None:
            order = order.scaleb(-2)
        code = _final_code(final)
        pay = order
        if code == PARTIAL:
            # Strictly less than ordered, never zero: a partial that pays nothing would be a failure.
            pay = max(Decimal("0.01"), (order * Decimal(_pick(seed, (trade_no, "part"), 10, 90)) / 100))
            pay = min(pay.quantize(Decimal("0.01")), order - Decimal("0.01"))
        polls = pending_polls
        if isinstance(polls, tuple):
            polls = _pick(seed, (trade_no, "polls"), polls[0], polls[1])
        if message is None:
            message = {SUCCESS: "success", PARTIAL: "partial success"}.get(code or "", "")
            if code == FAILED:
                message = _FAIL_MESSAGES[_pick(seed, (trade_no, "msg"), 0, len(_FAIL_MESSAGES) - 1)]
            elif not message:
                message = "in processing" if code is None else "unknown status"
        platform = f"VX{_pick(seed, (trade_no, 'plat'), 10**15, 10**16 - 1)}"
        return Payout(
            trade_no=trade_no,
            merchant_no=merchant_no,
            final_code=code,
            order_amount=order,
            pay_amount=pay,
            platform_trade_no=platform,
            final_message=message,
            pending_polls=polls,
            pending_seconds=pending_seconds,
            created_at=self.clock(),
            region=region.lower() if region else None,
            notify_url=notify_url,
            created=created,
        )

    def put(self, payout: Payout) -> Payout:
        with self.lock:
            self.payouts[payout.trade_no] = payout
        return payout

    def generate(
        self,
        n: int,
        merchant_no: str,
        mix: Mapping[str, float],
        *,
        prefix: str = "SIM",
        start: int = 0,
        regions: Iterable[str] | None = None,
        pending_polls: PendingSpec = None,
        pending_seconds: float | None = None,
        notify_url: str | None = None,
    ) -> list[str]:
        """Create ``n`` payouts whose final states follow the weights in ``mix``."""
        region_list = [r.lower() for r in regions] if regions else []
        made = []
        for i in range(start, start + n):
            trade_no = f"{prefix}{i:08d}"
            final = pick_final(self.seed, trade_no, mix)
            region = (
                region_list[_pick(self.seed, (trade_no, "reg"), 0, len(region_list) - 1)]
                if region_list
                else None
            )
            payout = self.make_payout(
                trade_no,
                merchant_no,
                final,
                pending_polls=pending_polls,
                pending_seconds=pending_seconds,
                region=region,
                notify_url=notify_url,
            )
            self.put(payout)
            made.append(trade_no)
        return made

    def advance(self, payout: Payout, *, poll: bool) -> None:
        """Count a poll (when ``poll``) and turn the payout final if its pending phase is over."""
        with self.lock:
            if poll and not payout.terminal:
                payout.polls += 1
            now = self.clock()
            if not payout.due(now):
                return
            assert payout.final_code is not None
            payout.status, payout.message, payout.finished_at = payout.final_code, payout.final_message, now
            if payout.from_api:
                self._settle(payout)
            listeners = list(self.listeners)
        for listener in listeners:
            listener(payout)

    def sweep(self) -> int:
        """Turn every timed payout whose time is up final (fires callbacks); return how many."""
        now = self.clock()
        with self.lock:
            due = [
                p for p in self.payouts.values() if p.created and p.pending_seconds is not None and p.due(now)
            ]
        for payout in due:
            self.advance(payout, poll=False)
        return len(due)

    def _settle(self, payout: Payout) -> None:
        merchant = self.merchants.get(payout.merchant_no)
        if merchant is None:
            return
        merchant.freeze -= payout.order_amount
        if payout.status in (SUCCESS, PARTIAL):
            merchant.available += payout.order_amount - payout.pay_amount
        else:
            merchant.available += payout.order_amount

    def clear(self, seed: int | None = None) -> None:
        """Forget payouts (merchants stay, balances return to their start); optionally re-seed."""
        with self.lock:
            if seed is not None:
                self.seed = seed
            self.payouts.clear()
            for merchant in self.merchants.values():
                merchant.available, merchant.freeze = Decimal("1000000.00"), Decimal("0.00")
