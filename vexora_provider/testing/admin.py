"""The unsigned admin API under ``/_simulator/``: reset, seed payouts, faults, counters.

It is a test tool bound to loopback, so it has no authentication; the server refuses to bind
anything but a loopback address.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from vexora_provider.testing.faults import FaultRule
from vexora_provider.testing.gateway import Reply

if TYPE_CHECKING:
    from vexora_provider.testing.simulator import VexoraSimulator

__all__ = ["ADMIN_PREFIX", "AdminApi"]

ADMIN_PREFIX = "/_simulator/"
_PAYOUT_OPTIONS = ("pending_polls", "pending_seconds", "amount", "region", "notify_url", "created", "message")


def _json(status: int, data: object) -> Reply:
    return Reply(status, json.dumps(data, default=str).encode())


def _pending(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class AdminApi:
    """Routes ``/_simulator/...`` requests to the simulator.

    :param sim: the simulator to drive.
    """

    def __init__(self, sim: VexoraSimulator) -> None:
        self.sim = sim

    def __call__(self, method: str, path: str, query: str, body: bytes) -> Reply:
        route = path[len(ADMIN_PREFIX) :].strip("/")
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return _json(400, {"error": "body is not JSON"})
        try:
            return self._route(method, route, parse_qs(query), data)
        except (ValueError, TypeError, KeyError) as exc:
            return _json(400, {"error": f"{type(exc).__name__}: {exc}"})

    def _route(self, method: str, route: str, query: dict[str, list[str]], data: Any) -> Reply:
        sim = self.sim
        if route in ("", "health"):
            return _json(200, {"ok": True})
        if route == "info" and method == "GET":
            return _json(200, {"merchantNo": sim.merchant_no, "secret": sim.secret, "seed": sim.seed})
        if route == "reset" and method == "POST":
            sim.reset(data.get("seed"))
            return _json(200, {"ok": True, "seed": sim.seed})
        if route == "stats" and method == "GET":
            stats = sim.stats(trades="trades" in query or "trade_no" in query)
            if "trade_no" in query:
                wanted = set(query["trade_no"])
                stats["trades"] = {k: v for k, v in stats["trades"].items() if k in wanted}
            return _json(200, stats)
        if route == "payouts":
            return self._payouts(method, data)
        if route.startswith("payouts/") and method == "GET":
            payout = sim.state.payouts.get(unquote(route[len("payouts/") :]))
            return _json(200, payout.as_dict()) if payout else _json(404, {"error": "no such payout"})
        if route == "faults":
            if method == "POST":
                items = data if isinstance(data, list) else [data]
                for item in items:
                    sim.add_fault(FaultRule.from_dict(item))
            elif method == "DELETE":
                sim.clear_faults()
            return _json(200, {"faults": [rule.to_dict() for rule in sim.faults.rules]})
        if route == "callbacks" and method == "GET":
            return _json(200, {"deliveries": [asdict(d) for d in sim.callbacks.deliveries]})
        if route == "callbacks/redeliver" and method == "POST":
            sim.callbacks.redeliver(data["trade_no"])
            return _json(200, {"ok": True})
        return _json(404, {"error": f"no admin route {method} /_simulator/{route}"})

    def _payouts(self, method: str, data: Any) -> Reply:
        sim = self.sim
        if method == "GET":
            with sim.state.lock:
                payouts = [p.as_dict() for p in sim.state.payouts.values()]
            return _json(200, {"count": len(payouts), "payouts": payouts})
        if method != "POST" or not isinstance(data, dict):
            return _json(405, {"error": "POST a JSON object"})
        if "trade_no" in data:
            options = {k: data[k] for k in _PAYOUT_OPTIONS if k in data}
            options["pending_polls"] = _pending(options.get("pending_polls"))
            payout = sim.add_payout(data["trade_no"], data.get("final", "success"), **options)
            return _json(200, {"tradeNos": [payout.trade_no]})
        made = sim.create_payouts(
            int(data.get("n", 1)),
            data.get("mix"),
            regions=data.get("regions"),
            pending_polls=_pending(data.get("pending_polls")),
            pending_seconds=data.get("pending_seconds"),
            prefix=data.get("prefix", "SIM"),
            notify_url=data.get("notify_url"),
        )
        return _json(200, {"tradeNos": made})
