"""The gateway's request handling, free of any I/O: bytes in, a :class:`Reply` out.

Every run mode (in-process httpx transports, the ASGI app under a real server) calls
:meth:`Gateway.handle`; only how a :class:`Reply` is put on the wire differs. Socket-level faults
(``truncated``, ``hang``, ``reset``) and delays are returned as instructions, because only the
run mode knows how to carry them out.
"""

from __future__ import annotations

import hmac
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

from vexora_provider.signing import SIGN_FIELD, sign
from vexora_provider.testing.faults import ACCEPT_THEN, FaultPlan, FaultRule
from vexora_provider.testing.hostile import HOSTILE_KINDS, hostile_fields
from vexora_provider.testing.regions import DEFAULT_REGION, REGION_VARIANTS, RegionVariant, format_amount
from vexora_provider.testing.state import PARTIAL, SUCCESS, Payout, SimulatorState, pick_final

__all__ = ["API_PREFIX", "DUPLICATE_CODE", "Gateway", "Reply"]

API_PREFIX = "/v1/vexora/"
_JSON = b"application/json"
_HTML_ERRORS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable"}
# Valid JSON syntax up to the point where a broken upstream cut it off mid-object.
_MALFORMED = b'{"code":"0000","msg":"success","success":true,"data":{"status":"0000","tradeNo":'
#: What ``disbursements`` answers for a trade number the merchant already used. Vexora does not
#: document its code, so the simulator's is configurable (``duplicate_code``); this default is
#: ours, distinct from every documented code.
DUPLICATE_CODE = "8001"


@dataclass(slots=True)
class Reply:
    """What to answer, and how.

    :param status: HTTP status.
    :param body: full response body.
    :param headers: extra headers (``Retry-After``).
    :param delay: seconds to wait before answering.
    :param action: ``None`` (answer normally), ``"truncated"`` (announce the full length, send
        half, close), ``"hang"`` (answer nothing for ``hang_seconds``, then close) or ``"reset"``
        (close with a TCP RST).
    :param in_flight: whether the call counts as in flight until :meth:`Gateway.finished`.
    """

    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()
    delay: float = 0.0
    action: str | None = None
    hang_seconds: float = 0.0
    in_flight: bool = False


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _sign_matches(fields: Mapping[str, object], secret: str) -> bool:
    # Exactly section 2: 32 lowercase hex digits. An upper-case or otherwise non-canonical sign is
    # refused, so a client that gets the case wrong fails here rather than against the gateway.
    # Compared as bytes: compare_digest refuses non-ASCII str, and a client may send anything.
    given = fields.get(SIGN_FIELD)
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(sign(fields, secret).encode(), given.encode("utf-8", "surrogatepass"))


def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Gateway:
    """Vexora's API over a :class:`SimulatorState`.

    :param state: merchants and payouts.
    :param faults: active fault rules.
    :param regions: response variant per region path segment (lower case); unknown ones use
        ``default_region``.
    :param create_mix: lifecycle weights for payouts created through ``disbursements``.
    :param create_pending_polls: pending polls for payouts created through ``disbursements``.
    :param create_pending_seconds: pending seconds for payouts created through ``disbursements``.
    :param admin: handler for ``/_simulator/...`` paths (method, path, query, body).
    :param duplicate_code: the ``code`` a ``disbursements`` call for a used trade number gets.

    An API call is in flight from :meth:`handle` until whoever carries out the reply (a server, a
    transport) calls :meth:`finished`: delays and hangs count. ``in_flight_peak`` is the most
    calls ever in flight at once, what a client-side cap on concurrency must keep bounded.
    """

    state: SimulatorState
    faults: FaultPlan = field(default_factory=FaultPlan)
    regions: Mapping[str, RegionVariant] = field(default_factory=lambda: dict(REGION_VARIANTS))
    default_region: RegionVariant = DEFAULT_REGION
    create_mix: Mapping[str, float] = field(default_factory=lambda: {"success": 1.0})
    create_pending_polls: int | tuple[int, int] | None = 1
    create_pending_seconds: float | None = None
    admin: Callable[[str, str, str, bytes], Reply] | None = None
    on_create: Callable[[Payout], None] | None = None
    requests: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    duplicate_code: str = DUPLICATE_CODE
    #: Accepted disbursements per ``(merchant_no, trade_no)``: how many payouts really went out.
    disbursed: Counter[tuple[str, str]] = field(default_factory=Counter)
    in_flight: int = 0
    in_flight_peak: int = 0
    connections: int = 0

    # -- entry point -------------------------------------------------------------------------
    def handle(self, method: str, path: str, merchant_no: str | None, body: bytes, query: str = "") -> Reply:
        """Answer one HTTP request (``merchant_no`` is the ``merchantNo`` header, if any)."""
        admin_at = path.find("/_simulator/")
        if admin_at >= 0 and self.admin is not None:
            # Also under a region prefix: users' base URLs usually end in the region.
            return self.admin(method, path[admin_at:], query, body)
        cut = path.find(API_PREFIX)
        if cut < 0 or method != "POST":
            return Reply(404 if cut < 0 else 405, b'{"error":"not found"}')
        endpoint = path[cut + len(API_PREFIX) :].strip("/")
        region = path[1:cut].split("/", 1)[0].lower() if cut > 0 else ""
        try:
            fields = json.loads(body) if body else None
        except ValueError:
            fields = None
        trade_no = fields.get("tradeNo") if isinstance(fields, dict) else None
        key = trade_no if isinstance(trade_no, str) else f"merchant:{merchant_no}"
        with self.state.lock:
            self.in_flight += 1
            if self.in_flight > self.in_flight_peak:
                self.in_flight_peak = self.in_flight
            self.requests[endpoint] += 1
            nth = self.calls[endpoint, key] = self.calls.get((endpoint, key), 0) + 1
            delay, fault = self.faults.decide(self.state.seed, endpoint, key, nth)
            if fault is not None and fault.kind not in HOSTILE_KINDS:
                if fault.kind.startswith(ACCEPT_THEN):
                    self._api(endpoint, region, merchant_no, fields)  # done; the answer is lost
                reply = self._fault(fault)
                self.outcomes[endpoint, fault.kind] += 1
            elif fault is not None:
                reply = self._api(endpoint, region, merchant_no, fields, hostile=fault)
                self.outcomes[endpoint, fault.kind] += 1
            else:
                reply = self._api(endpoint, region, merchant_no, fields)
                self.outcomes[
                    endpoint, reply.body[9:13].decode() if reply.status == 200 else str(reply.status)
                ] += 1
        reply.delay += delay
        reply.in_flight = True
        return reply

    def finished(self, reply: Reply) -> None:
        """The reply has been sent (or the connection dropped): its call is no longer in flight."""
        if reply.in_flight:
            reply.in_flight = False
            with self.state.lock:
                self.in_flight -= 1

    # -- envelopes ---------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self.state.clock() * 1000)

    def _ok(self, data: str) -> Reply:
        return Reply(
            200,
            f'{{"code":"0000","msg":"success","success":true,"timestamp":{self._now_ms()},"data":{data}}}'.encode(),
        )

    def error(self, code: str, msg: str) -> Reply:
        """The gateway's refusal: HTTP 200, a non-0000 ``code``, ``data`` null."""
        text = f'{{"code":"{code}","msg":{_s(msg)},"success":false,"timestamp":{self._now_ms()},"data":null}}'
        return Reply(200, text.encode())

    def _fault(self, rule: FaultRule) -> Reply:
        kind = rule.kind.removeprefix(ACCEPT_THEN)
        if kind.startswith("http_") and kind != "http_429":
            status = int(kind[5:])
            title = f"{status} {_HTML_ERRORS[status]}"
            # What an nginx in front of the gateway answers, not JSON.
            page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
            return Reply(status, page.encode(), b"text/html")
        if kind == "http_429":
            return Reply(
                429, b"Too Many Requests", b"text/plain", ((b"retry-after", str(rule.retry_after).encode()),)
            )
        if kind == "code_5000":
            return self.error("5000", "system exception, please try again later")
        if kind == "code_8000":
            return self.error("8000", "request failed, please try again later")
        if kind == "malformed_json":
            return Reply(200, _MALFORMED)
        if kind == "not_found":
            return self.error("8000", "order not exist")
        body = self._ok('{"status":"0015","message":"in processing"}').body
        return Reply(200, body, action=kind, hang_seconds=rule.hang_seconds)

    # -- the API -----------------------------------------------------------------------------
    def _api(
        self,
        endpoint: str,
        region: str,
        merchant_no: str | None,
        fields: object,
        hostile: FaultRule | None = None,
    ) -> Reply:
        if not isinstance(fields, dict):
            return self.error("8000", "request body must be a JSON object")
        merchant = self.state.merchants.get(merchant_no or "")
        if merchant is None:
            return self.error("8000", "merchant not exist")
        if not fields.get("timestamp"):
            return self.error("8000", "timestamp is required")
        if not _sign_matches(fields, merchant.secret):
            return self.error("8000", "sign error")
        variant = self.regions.get(region, self.default_region)
        if endpoint == "queryBalance":
            amounts = (merchant.available, merchant.freeze, merchant.unsettled)
            names = ("availableAmount", "freezeAmount", "unsettledAmount")
            pairs = zip(names, amounts, strict=True)
            return self._ok("{" + ",".join(f'"{n}":{format_amount(a, variant)}' for n, a in pairs) + "}")
        trade_no = fields.get("tradeNo")
        if not isinstance(trade_no, str) or not trade_no:
            return self.error("8000", "tradeNo is required")
        if endpoint == "disbursements":
            return self._create(merchant.merchant_no, region, trade_no, fields, variant)
        payout = self.state.find(merchant.merchant_no, trade_no)
        if (
            endpoint != "queryPayOutResult"
            or payout is None
            or not payout.created
            or (payout.region is not None and payout.region != region)
        ):
            if endpoint not in ("queryPayOutResult", "queryPayInResult"):
                return Reply(404, b'{"error":"not found"}')
            return self.error("8000", "order not exist")
        self.state.advance(payout, poll=True)
        return self._ok(self.payout_data(payout, variant, hostile))

    def _create(
        self, merchant_no: str, region: str, trade_no: str, fields: dict[str, object], variant: RegionVariant
    ) -> Reply:
        try:
            amount = Decimal(str(fields.get("amount")))
        except InvalidOperation:
            amount = Decimal(0)
        if not amount.is_finite() or amount <= 0:
            return self.error("8000", "amount is invalid")
        merchant = self.state.merchants[merchant_no]
        if amount > merchant.available:
            return self.error("8000", "insufficient balance")
        scripted = self.state.find(merchant_no, trade_no)
        if scripted is not None and scripted.created:
            return self.error(self.duplicate_code, "tradeNo already exists")
        notify = fields.get("notifyUrl")
        if scripted is None:
            final = pick_final(self.state.seed, trade_no, self.create_mix)
            scripted = self.state.make_payout(
                trade_no,
                merchant_no,
                final,
                pending_polls=self.create_pending_polls,
                pending_seconds=self.create_pending_seconds,
                amount=amount,
            )
        else:
            # Keep the scripted lifecycle, take the amount the client actually ordered.
            pay = amount
            if scripted.final_code == PARTIAL:
                share = scripted.pay_amount / scripted.order_amount
                pay = max(
                    Decimal("0.01"), min((amount * share).quantize(Decimal("0.01")), amount - Decimal("0.01"))
                )
            scripted.order_amount, scripted.pay_amount = amount, pay
            scripted.created_at = self.state.clock()
        scripted.created, scripted.from_api = True, True
        scripted.notify_url = notify if isinstance(notify, str) and notify else scripted.notify_url
        scripted.region = scripted.region or region or None
        merchant.available -= amount
        merchant.freeze += amount
        self.disbursed[merchant_no, trade_no] += 1
        self.state.put(scripted)
        if self.on_create is not None:
            self.on_create(scripted)
        return self._ok(self.payout_data(scripted, variant))

    def payout_data(self, payout: Payout, variant: RegionVariant, hostile: FaultRule | None = None) -> str:
        """The ``data`` object of a payout as JSON text, shaped by the region variant.

        :param hostile: a hostile-answer rule whose fields replace or join the real ones.
        """
        paid = payout.status in (SUCCESS, PARTIAL)
        parts = {
            "tradeNo": _s(payout.trade_no),
            "platFormTradeNo": f'"{payout.platform_trade_no}"',
            "status": f'"{payout.status}"',
            "message": _s(payout.message),
        }
        if variant.amount_fields == "amount":
            parts["amount"] = format_amount(payout.pay_amount if paid else payout.order_amount, variant)
        else:
            parts["orderAmount"] = format_amount(payout.order_amount, variant)
            parts["payAmount"] = format_amount(payout.pay_amount if paid else Decimal(0), variant)
        if variant.success_time and paid and payout.finished_at is not None:
            parts["successTime"] = f'"{self.local_time(payout.finished_at, variant)}"'
        if variant.extra_field:
            parts["channelCode"] = '"SIMBANK"'
        if hostile is not None:
            parts.update(hostile_fields(hostile, variant))
        return "{" + ",".join(f'"{name}":{text}' for name, text in parts.items()) + "}"

    @staticmethod
    def local_time(when: float, variant: RegionVariant) -> str:
        """``yyyy-MM-dd HH:mm:ss`` in the region's local time, without offset, as Vexora writes it."""
        return (
            datetime.fromtimestamp(when, UTC)
            .astimezone(_zone(variant.timezone))
            .strftime("%Y-%m-%d %H:%M:%S")
        )

    def reset_counters(self) -> None:
        with self.state.lock:
            self.requests.clear()
            self.outcomes.clear()
            self.calls.clear()
            self.disbursed.clear()
            self.in_flight_peak = self.in_flight
            self.connections = 0
