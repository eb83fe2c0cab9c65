"""``vexora://<merchant>/payouts`` assets, and what an event on them says.

A payout that settles becomes an asset event on its merchant's payouts asset. Three producers feed
the same asset, each with its own ``source``:

* ``callback``: Vexora's signed callback, received by the API-server plugin; the event's
  ``extra`` is one settlement.
* ``poll``: :class:`~vexora_provider.triggers.settlement.PayoutSettledTrigger` in an
  ``AssetWatcher``; Airflow nests the settlement under ``extra["payload"]``.
* ``sync``: :class:`~vexora_provider.operators.payout_status.PayoutStatusToSqlOperator` with the
  asset in its ``outlets``; ``extra["settled"]`` lists the trades that became final in that run.

:func:`settlements_from_events` reads all three into one list of plain dicts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from vexora_provider.models import PayoutState, PayoutStatus

if TYPE_CHECKING:
    from urllib.parse import SplitResult

__all__ = [
    "CALLBACK_MARKER_PREFIX",
    "POLL_MEMORY_KEY",
    "SCHEME",
    "SETTLEMENT_FIELDS",
    "callback_marker_key",
    "convert_asset_to_openlineage",
    "create_asset",
    "event_key",
    "is_announced",
    "merchant_of",
    "payouts_asset",
    "payouts_uri",
    "poll_memory",
    "poll_memory_value",
    "sanitize_uri",
    "settlement_extra",
    "settlements_for_run",
    "settlements_from_events",
]

log = logging.getLogger(__name__)

SCHEME = "vexora"
PAYOUTS_PATH = "/payouts"
# Vexora's merchant numbers are ten digits; letters, "_" and "-" are allowed for other tenants'
# ids, nothing that could change the URI's meaning.
_MERCHANT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: The keys of one settlement, in every source's ``extra`` (``source`` says which).
SETTLEMENT_FIELDS: tuple[str, ...] = (
    "trade_no",
    "platform_trade_no",
    "status_code",
    "state",
    "amount",
    "success_time",
    "source",
)

# Keys in the asset state store of a payouts asset. The callback receiver writes one marker row per
# announced (trade, state) and reads the watcher's memory; the watcher reads the markers. Either
# producer so skips what the other already announced.
#: Prefix of the callback receiver's marker keys: ``vexora.callback.<event key>.<trade_no>``.
CALLBACK_MARKER_PREFIX = "vexora.callback."
#: The watcher's memory: ``{trade_no: event key}`` of announced trades the table still has non-final.
POLL_MEMORY_KEY = "vexora.poll.announced"


def _check_merchant(merchant_no: object) -> str:
    if not isinstance(merchant_no, str) or not _MERCHANT_RE.fullmatch(merchant_no):
        raise ValueError(
            f"vexora:// URI needs a merchant number of 1-64 letters, digits, '_' or '-', got {merchant_no!r}"
        )
    return merchant_no


def payouts_uri(merchant_no: str) -> str:
    """Return ``vexora://<merchant_no>/payouts``; refuse a merchant number that is not plain."""
    return f"{SCHEME}://{_check_merchant(merchant_no)}{PAYOUTS_PATH}"


def payouts_asset(merchant_no: str, **asset_kwargs: Any) -> Asset:
    """
    Return the asset of a merchant's payout settlements, ``vexora://<merchant_no>/payouts``.

    :param merchant_no: the merchant number (the ``vexora`` connection's login).
    :param asset_kwargs: passed to :class:`airflow.sdk.Asset` (``watchers=``, ``group=``,
        ``extra=`` …); ``name`` defaults to ``vexora_payouts_<merchant_no>``.
    """
    asset_kwargs.setdefault("name", f"vexora_payouts_{_check_merchant(merchant_no)}")
    return Asset(uri=payouts_uri(merchant_no), **asset_kwargs)


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """
    Accept only ``vexora://<merchant>/payouts`` (Airflow calls this for every ``vexora://`` URI).

    Airflow has already lowercased the scheme, dropped the fragment and trailing slashes.
    """
    if not uri.netloc:
        raise ValueError("vexora:// URI must name a merchant: vexora://<merchant_no>/payouts")
    if "@" in uri.netloc or ":" in uri.netloc:
        raise ValueError("vexora:// URI must not carry user info or a port")
    _check_merchant(uri.netloc)
    if uri.path != PAYOUTS_PATH or uri.query:
        raise ValueError(
            f"vexora:// URI must be vexora://{uri.netloc}{PAYOUTS_PATH}, got path {uri.path!r}"
            + (f" and query {uri.query!r}" if uri.query else "")
        )
    return uri


def create_asset(*, merchant_no: str, extra: dict[str, Any] | None = None) -> Asset:
    """Asset factory registered for the ``vexora`` scheme (same as :func:`payouts_asset`)."""
    return payouts_asset(merchant_no, extra=extra) if extra is not None else payouts_asset(merchant_no)


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    """Return the OpenLineage dataset of a payouts asset: namespace ``vexora://<merchant>``, ``payouts``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    merchant_no = merchant_of(asset.uri)
    if merchant_no is None:
        raise ValueError(f"{asset.uri!r} is not a vexora://<merchant>/payouts URI")
    return Dataset(namespace=f"{SCHEME}://{merchant_no}", name=PAYOUTS_PATH.lstrip("/"))


def merchant_of(uri: str) -> str | None:
    """Return the merchant of a ``vexora://<merchant>/payouts`` URI, ``None`` for any other URI."""
    prefix = f"{SCHEME}://"
    if not uri.startswith(prefix) or not uri.endswith(PAYOUTS_PATH):
        return None
    merchant_no = uri[len(prefix) : -len(PAYOUTS_PATH)]
    return merchant_no if _MERCHANT_RE.fullmatch(merchant_no) else None


# -- what is announced, and how ------------------------------------------------------------------


def is_announced(status: PayoutStatus) -> bool:
    """Whether a status becomes an asset event: final states and undocumented codes, never pending."""
    return status.state is not PayoutState.PENDING


def event_key(status: PayoutStatus) -> str:
    """
    The part of a settlement that makes it distinct for one trade: the final state, or
    ``unknown-<code>`` for an undocumented code (so a later real final state is a new event).
    """
    return _event_key(status.state.value, status.status_code)


def _event_key(state: str, status_code: object) -> str:
    return f"unknown-{status_code}" if state == PayoutState.UNKNOWN.value else state


def callback_marker_key(status: PayoutStatus) -> str:
    """The asset-state-store key that records a callback's announcement of this settlement."""
    return f"{CALLBACK_MARKER_PREFIX}{event_key(status)}.{status.trade_no}"


def poll_memory(value: object) -> dict[str, str]:
    """Read the watcher's memory (``{trade_no: event key}``) from its state-store value."""
    trades = value.get("trades") if isinstance(value, dict) else None
    if not isinstance(trades, dict):
        return {}
    return {str(t): str(k) for t, k in trades.items()}


def poll_memory_value(trades: Mapping[str, str]) -> dict[str, Any]:
    """The state-store value of the watcher's memory."""
    return {"trades": dict(trades)}


def settlement_extra(status: PayoutStatus, *, source: str) -> dict[str, str | None]:
    """
    Return the plain-JSON settlement of an announced status.

    ``amount`` is the amount actually paid, as exact text: ``amount`` where the region sends it,
    else ``payAmount``. ``success_time`` is ISO 8601 with the region's offset, or ``None`` when the
    gateway sent none or the region's timezone is unknown.
    """
    amount = status.amount if status.amount is not None else status.pay_amount
    return {
        "trade_no": status.trade_no,
        "platform_trade_no": status.platform_trade_no,
        "status_code": status.status_code,
        "state": status.state.value,
        "amount": None if amount is None else str(amount),
        "success_time": status.success_time.isoformat() if status.success_time else None,
        "source": source,
    }


def _from_sync(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = extra.get("settled")
    if not isinstance(items, list):
        return []
    found = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("trade_no"), str):
            found.append({field: item.get(field) for field in SETTLEMENT_FIELDS} | {"source": "sync"})
    if extra.get("truncated"):
        log.warning(
            "A sync announced more settled payouts than its event lists (%s); read the rest from its table",
            extra.get("counts"),
        )
    return found


def settlements_from_events(events: Iterable[Any]) -> list[dict[str, Any]]:
    """
    Return the settlements announced by asset events on payouts assets, first announcement first.

    Accepts Airflow's asset events (anything with an ``extra`` mapping, e.g. one entry of
    ``triggering_asset_events[asset]``) or their ``extra`` dicts. Each result has the keys of
    :data:`SETTLEMENT_FIELDS`; a ``sync`` event only knows ``trade_no`` and ``state`` (the others
    are ``None``). The same trade in the same state, announced by several sources, is returned
    once. Events that are not settlements are skipped with a warning.

    :param events: the asset events (or their ``extra`` dicts).
    """
    seen: set[tuple[str, str]] = set()
    result: list[dict[str, Any]] = []
    for event in events:
        extra = event if isinstance(event, Mapping) else getattr(event, "extra", None)
        if isinstance(extra, Mapping) and isinstance(extra.get("payload"), Mapping):
            extra = extra["payload"]  # from a watcher: Airflow nests the trigger's payload
        if not isinstance(extra, Mapping):
            log.warning("Skipping an asset event without an extra dict: %r", type(event).__name__)
            continue
        source = extra.get("source")
        if source == "sync":
            found = _from_sync(extra)
        elif source in ("callback", "poll") and isinstance(extra.get("trade_no"), str):
            found = [{field: extra.get(field) for field in SETTLEMENT_FIELDS}]
        else:
            log.warning("Skipping an asset event that is not a Vexora settlement (source %r)", source)
            continue
        for item in found:
            state = str(item["state"])
            key = (str(item["trade_no"]), _event_key(state, item["status_code"]))
            if key not in seen:
                seen.add(key)
                result.append(item)
    return result


def settlements_for_run(context: Mapping[str, Any], asset: Asset) -> list[dict[str, Any]]:
    """
    Return the settlements a run scheduled on a payouts asset should handle.

    That is the events that triggered the run (``triggering_asset_events``) and, when ``asset``
    is in the task's ``inlets``, the events that arrived after the run was triggered: Airflow
    3.3 triggers a run on the first queued event and does not queue another for events that
    arrive while that run is being created, so without this they would wait for the next
    settlement. A later run may bring some of them again: handle them idempotently.

    :param context: the task's context (``**context`` of a ``@task``).
    :param asset: the payouts asset the DAG is scheduled on.
    """
    triggering = context.get("triggering_asset_events")
    events: list[Any] = list(triggering.get(asset, ())) if triggering is not None else []
    inlets, dag_run = context.get("inlet_events"), context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if inlets is not None and run_after is not None:
        try:
            events.extend(inlets[asset].after(run_after.isoformat()))
        except KeyError:
            log.warning(
                "%s is not in the task's inlets: settlements that arrived after this run was "
                "triggered wait for the next run",
                asset.uri,
            )
    return settlements_from_events(events)
