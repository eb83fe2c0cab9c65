"""``VexoraSimulator``: one object that owns the state and hands out every way to reach it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from vexora_provider.signing import signed_body, timestamp_ms
from vexora_provider.testing.callbacks import DEFAULT_SCHEDULE, CallbackDispatcher
from vexora_provider.testing.faults import FaultPlan, FaultRule
from vexora_provider.testing.gateway import DUPLICATE_CODE, Gateway
from vexora_provider.testing.regions import DEFAULT_REGION, REGION_VARIANTS, RegionVariant
from vexora_provider.testing.state import Payout, PendingSpec, SimulatorState
from vexora_provider.testing.transport import AsyncSimulatorTransport, SimulatorTransport

if TYPE_CHECKING:
    from vexora_provider.testing.server import SimulatorServer

__all__ = ["DEFAULT_MIX", "VexoraSimulator"]

DEFAULT_MIX: dict[str, float] = {"success": 1.0}
#: Host used in connections for in-process mode, where no socket exists; never resolvable.
IN_PROCESS_BASE = "https://vexora-simulator.invalid"


class VexoraSimulator:
    """A local Vexora gateway: merchants, payouts with scripted lifecycles, faults, callbacks.

    :param seed: drives credentials, generated payouts and probabilistic faults.
    :param merchant_no: the default merchant's id (derived from ``seed`` if omitted).
    :param secret: the default merchant's app secret (derived from ``seed`` if omitted).
    :param clock: Unix-seconds clock; a :class:`~vexora_provider.testing.state.ManualClock` scripts
        time-based lifecycles without sleeping.
    :param regions: response variants per region path segment, merged over the defaults.
    :param default_region: variant for region segments not in ``regions``.
    :param create_mix: lifecycle weights for payouts created through ``disbursements``.
    :param create_pending_polls: pending polls for payouts created through ``disbursements``.
    :param create_pending_seconds: pending seconds for payouts created through ``disbursements``.
    :param callback_time_scale: multiplier for Vexora's callback retry schedule.
    :param callback_schedule: seconds between callback retries.
    :param faults: initial fault rules.
    :param duplicate_code: the ``code`` answered to a ``disbursements`` call for a trade number
        the merchant already used (Vexora's own is undocumented).
    """

    def __init__(
        self,
        seed: int = 0,
        merchant_no: str | None = None,
        secret: str | None = None,
        *,
        clock: Callable[[], float] | None = None,
        regions: Mapping[str, RegionVariant] | None = None,
        default_region: RegionVariant = DEFAULT_REGION,
        create_mix: Mapping[str, float] | None = None,
        create_pending_polls: PendingSpec = 1,
        create_pending_seconds: float | None = None,
        callback_time_scale: float = 1.0,
        callback_schedule: tuple[float, ...] = DEFAULT_SCHEDULE,
        faults: Iterable[FaultRule] = (),
        duplicate_code: str = DUPLICATE_CODE,
    ) -> None:
        self.state = SimulatorState(seed=seed) if clock is None else SimulatorState(seed=seed, clock=clock)
        self.merchant = self.state.add_merchant(merchant_no, secret)
        self.faults = FaultPlan(list(faults))
        variants = {**REGION_VARIANTS, **{k.lower(): v for k, v in (regions or {}).items()}}
        self.gateway = Gateway(
            self.state,
            self.faults,
            variants,
            default_region,
            dict(create_mix or DEFAULT_MIX),
            create_pending_polls,
            create_pending_seconds,
            duplicate_code=duplicate_code,
        )
        self.callbacks = CallbackDispatcher(self.state, callback_schedule, callback_time_scale)
        self.gateway.on_create = self._created
        from vexora_provider.testing.admin import AdminApi  # admin needs the finished simulator

        self.gateway.admin = AdminApi(self)
        self._next: Counter[str] = Counter()

    # -- credentials -------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self.state.seed

    @property
    def merchant_no(self) -> str:
        return self.merchant.merchant_no

    @property
    def secret(self) -> str:
        return self.merchant.secret

    def signed(self, **fields: str) -> dict[str, str]:
        """A request body for the default merchant: ``fields`` + ``timestamp`` + ``sign``."""
        return signed_body({"timestamp": timestamp_ms(), **fields}, self.secret)

    def headers(self) -> dict[str, str]:
        """The headers a client sends (``merchantNo`` and the JSON content type)."""
        return {"merchantNo": self.merchant_no, "Content-Type": "application/json"}

    # -- payouts -----------------------------------------------------------------------------
    def create_payouts(
        self,
        n: int,
        mix: Mapping[str, float] | None = None,
        *,
        regions: Iterable[str] | None = None,
        pending_polls: PendingSpec = None,
        pending_seconds: float | None = None,
        prefix: str = "SIM",
        notify_url: str | None = None,
    ) -> list[str]:
        """Create ``n`` payouts numbered ``<prefix>00000000``… and return their trade numbers.

        :param mix: weights of final states (``success``, ``partial``, ``failed``, ``pending``,
            ``unknown`` or raw codes), normalised; default all ``success``.
        :param regions: spread payouts over these regions (each only visible under its path).
        :param pending_polls: polls answered ``0015`` before the final status; a ``(lo, hi)`` tuple
            draws it per payout from the seed.
        :param pending_seconds: seconds pending before the final status.
        :param notify_url: where each payout's callbacks go (loopback only).
        """
        start = self._next[prefix]
        made = self.state.generate(
            n,
            self.merchant_no,
            mix or DEFAULT_MIX,
            prefix=prefix,
            start=start,
            regions=regions,
            pending_polls=pending_polls,
            pending_seconds=pending_seconds,
            notify_url=notify_url,
        )
        self._next[prefix] = start + n
        if notify_url:
            self.callbacks.start()  # timed payouts call back even when nobody polls
        return made

    def add_payout(
        self,
        trade_no: str,
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
        """Add one payout with a scripted lifecycle (``created=False``: waits for ``disbursements``).

        :param final: ``success``, ``partial``, ``failed``, ``pending``, ``unknown`` or a raw code.
        """
        payout = self.state.make_payout(
            trade_no,
            self.merchant_no,
            final,
            pending_polls=pending_polls,
            pending_seconds=pending_seconds,
            amount=amount,
            region=region,
            notify_url=notify_url,
            created=created,
            message=message,
        )
        self.state.put(payout)
        self._created(payout)
        return payout

    def payout(self, trade_no: str) -> Payout:
        """The default merchant's payout record (raises ``KeyError`` if unknown)."""
        return self.state.payouts[self.merchant_no, trade_no]

    def creates(self, trade_no: str) -> int:
        """How many ``disbursements`` calls for ``trade_no`` the default merchant got accepted."""
        return self.gateway.disbursed[self.merchant_no, trade_no]

    def _created(self, payout: Payout) -> None:
        if payout.notify_url and payout.created:
            self.callbacks.start()  # the thread also turns timed payouts final when nobody polls

    # -- faults ------------------------------------------------------------------------------
    def add_fault(
        self, kind: str | FaultRule, endpoint: str = "*", probability: float = 1.0, **options: Any
    ) -> FaultRule:
        """Add a fault rule; ``options`` are the other :class:`FaultRule` fields (``nth``, ``trade_no``…)."""
        rule = kind if isinstance(kind, FaultRule) else FaultRule(kind, endpoint, probability, **options)
        with self.state.lock:
            return self.faults.add(rule)

    def clear_faults(self) -> None:
        with self.state.lock:
            self.faults.clear()

    # -- inspection --------------------------------------------------------------------------
    def stats(self, *, trades: bool = False) -> dict[str, Any]:
        """Request counts per endpoint, outcomes per endpoint, payouts per status (and per trade).

        Also ``in_flight`` (API calls received and not yet answered), ``in_flight_peak`` (the most
        at once since the last reset) and ``connections`` (TCP connections accepted, ``fast``
        engine only).
        """
        with self.state.lock:
            outcomes: dict[str, dict[str, int]] = {}
            for (endpoint, outcome), count in self.gateway.outcomes.items():
                outcomes.setdefault(endpoint, {})[outcome] = count
            result: dict[str, Any] = {
                "requests": dict(self.gateway.requests),
                "total": sum(self.gateway.requests.values()),
                "outcomes": outcomes,
                "payouts": dict(Counter(p.status for p in self.state.payouts.values() if p.created)),
                "callbacks": len(self.callbacks.deliveries),
                "in_flight": self.gateway.in_flight,
                "in_flight_peak": self.gateway.in_flight_peak,
                "connections": self.gateway.connections,
            }
            if trades:
                per_trade: dict[str, dict[str, int]] = {}
                for (endpoint, key), count in self.gateway.calls.items():
                    per_trade.setdefault(key, {})[endpoint] = count
                result["trades"] = per_trade
        return result

    def calls(self, trade_no: str, endpoint: str = "queryPayOutResult") -> int:
        """How many calls about ``trade_no`` reached ``endpoint`` (faulted ones included)."""
        return self.gateway.calls.get((endpoint, trade_no), 0)

    def reset(self, seed: int | None = None) -> None:
        """Forget payouts, faults, counters and callback history; optionally change the seed."""
        with self.state.lock:
            self.state.clear(seed)
            self.faults.clear()
            self.gateway.reset_counters()
            self.callbacks.deliveries.clear()
            self._next.clear()

    # -- ways to reach it --------------------------------------------------------------------
    def transport(self, *, sleep: bool = True) -> SimulatorTransport:
        """An ``httpx.BaseTransport`` for ``httpx.Client(transport=...)`` (no socket)."""
        return SimulatorTransport(self.gateway, sleep=sleep)

    def async_transport(self, *, sleep: bool = True) -> AsyncSimulatorTransport:
        """An ``httpx.AsyncBaseTransport`` for ``httpx.AsyncClient(transport=...)`` (no socket)."""
        return AsyncSimulatorTransport(self.gateway, sleep=sleep)

    def asgi_app(self) -> Any:
        """The ASGI application (mount it under any ASGI server)."""
        from vexora_provider.testing.app import SimulatorApp

        return SimulatorApp(self.gateway)

    def serve(
        self, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning", engine: str = "fast"
    ) -> SimulatorServer:
        """A real HTTP server on loopback; use as ``with sim.serve() as server: server.url``.

        :param engine: ``"fast"`` (own asyncio/httptools server) or ``"uvicorn"`` (the ASGI app).
        """
        from vexora_provider.testing.server import SimulatorServer

        return SimulatorServer(self, host=host, port=port, log_level=log_level, engine=engine)

    def airflow_connection(
        self, base_url: str = IN_PROCESS_BASE, region: str = "nigeria", **extra: Any
    ) -> str:
        """The connection as Airflow's JSON form (for ``AIRFLOW_CONN_<ID>`` or ``airflow connections add``).

        :param base_url: scheme, host and port of the simulator (a server's ``url``); the default
            is a placeholder for in-process use, where the transports ignore the host.
        :param region: the region path segment appended to ``base_url``.
        :param extra: connection extras (timeouts, retries…).
        """
        host = f"{base_url.rstrip('/')}/{region}" if region else base_url.rstrip("/")
        conn: dict[str, Any] = {
            "conn_type": "vexora",
            "host": host,
            "login": self.merchant_no,
            "password": self.secret,
        }
        if extra:
            conn["extra"] = extra
        return json.dumps(conn)

    def airflow_env(
        self, conn_id: str = "vexora_default", base_url: str = IN_PROCESS_BASE, region: str = "nigeria"
    ) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": <json>}``, ready for ``monkeypatch.setenv`` or ``os.environ``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.airflow_connection(base_url, region)}

    def close(self) -> None:
        """Stop the callback thread."""
        self.callbacks.stop()

    def __enter__(self) -> VexoraSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
