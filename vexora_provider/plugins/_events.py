"""Turning a verified callback into an asset event in Airflow's metadata database, exactly once.

The dedupe key is a row of Airflow's ``asset_state_store`` table, keyed
``(asset_id, "vexora.callback.<state>.<trade_no>")``, inserted in the **same transaction** as the
asset event. The table's primary key makes the insert a compare-and-set: of two identical
callbacks arriving at once, the second insert waits for the first transaction and then fails
(PostgreSQL, MySQL) or gets "database is locked" and retries into the committed marker (SQLite),
so exactly one event is created and both answer ``OK``. A marker without its event, or an event
without its marker, cannot be committed.

Why that table and not one of our own: it exists in every Airflow 3.3 database (no DDL of ours in
Airflow's schema, nothing for ``airflow db`` to trip over), its rows are scoped to the asset and
deleted with it, operators can inspect or delete a marker through the public REST API
(``/api/v2/assets/{id}/state-store``), and the watcher can read the same markers through its
``asset_state_store`` accessor. Markers older than ``[vexora] callback_dedupe_days`` (Vexora stops
retrying after 24 hours) are pruned by the receiver itself.

``AssetManager`` and the models are Airflow internals, not its public interface: this module is
the only place the provider touches them, with the same call Airflow's own REST endpoint makes,
and the integration and end-to-end tests run it against the Airflow version the provider pins.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from vexora_provider.assets import (
    CALLBACK_MARKER_PREFIX,
    POLL_MEMORY_KEY,
    callback_marker_key,
    event_key,
    payouts_uri,
    poll_memory,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from vexora_provider.models import PayoutStatus

__all__ = ["DEFAULT_DEDUPE_DAYS", "AirflowEventSink", "Recorded"]

log = logging.getLogger("vexora_provider.plugins.callbacks")

DEFAULT_DEDUPE_DAYS = 7
PRUNE_EVERY = 3600.0  # seconds between prunes of one asset's old markers, per API-server process
_LOCKED_RETRIES = 5  # SQLite answers "database is locked" to one of two concurrent writers


def _polled(memory_value: str | None, status: PayoutStatus) -> bool:
    """Whether the watcher's memory (one JSON value) says it announced this settlement already."""
    if memory_value is None:
        return False
    try:
        memory = poll_memory(json.loads(memory_value))
    except ValueError:
        return False
    return memory.get(status.trade_no) == event_key(status)


class Recorded(enum.Enum):
    """What recording a settlement did."""

    CREATED = "created"
    DUPLICATE = "duplicate"
    NO_ASSET = "no_asset"


def _dedupe_days() -> int:
    from airflow.configuration import conf

    return max(1, conf.getint("vexora", "callback_dedupe_days", fallback=DEFAULT_DEDUPE_DAYS))


class AirflowEventSink:
    """
    Creates asset events in the metadata database of the API server it runs in.

    Uses ``AssetManager.register_asset_change``, the call behind Airflow's own
    ``POST /api/v2/assets/events``, with a session of the API server.
    """

    def __init__(self) -> None:
        self._pruned_at: dict[int, float] = {}
        self._lock = threading.Lock()

    def record(self, *, merchant_no: str, status: PayoutStatus, extra: dict[str, Any]) -> Recorded:
        """Create the asset event for ``status`` unless this settlement was announced before."""
        from sqlalchemy.exc import IntegrityError, OperationalError

        for attempt in range(1, _LOCKED_RETRIES + 1):
            try:
                return self._record_once(merchant_no, status, extra)
            except IntegrityError:
                return Recorded.DUPLICATE  # the twin's marker committed first
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or attempt == _LOCKED_RETRIES:
                    raise
                time.sleep(0.02 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _record_once(self, merchant_no: str, status: PayoutStatus, extra: dict[str, Any]) -> Recorded:
        from airflow.assets.manager import asset_manager
        from airflow.models.asset import AssetModel
        from airflow.models.asset_state_store import AssetStateStoreModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        uri = payouts_uri(merchant_no)
        key = callback_marker_key(status)
        with create_session() as session:
            asset = session.scalar(select(AssetModel).where(AssetModel.uri == uri, AssetModel.active.has()))
            if asset is None:
                return Recorded.NO_ASSET
            # One round trip for both: this callback's marker, and the watcher's memory.
            rows = session.execute(
                select(AssetStateStoreModel.key, AssetStateStoreModel.value).where(
                    AssetStateStoreModel.asset_id == asset.id,
                    AssetStateStoreModel.key.in_([key, POLL_MEMORY_KEY]),
                )
            )
            found: dict[str, str] = {row_key: value for row_key, value in rows}
            if key in found:
                return Recorded.DUPLICATE
            announced_by_poll = _polled(found.get(POLL_MEMORY_KEY), status)
            now = datetime.now(UTC)
            session.add(
                AssetStateStoreModel(
                    asset_id=asset.id,
                    key=key,
                    value=json.dumps({"at": now.isoformat(), "event": not announced_by_poll}),
                    updated_at=now,
                    last_updated_by_kind="api",
                )
            )
            # The primary key is the lock: a concurrent twin fails here, before any event exists.
            session.flush()
            if not announced_by_poll:
                asset_manager.register_asset_change(
                    asset=asset, extra=extra, source_is_api=True, session=session
                )
            self._maybe_prune(session, asset.id, now)
        return Recorded.DUPLICATE if announced_by_poll else Recorded.CREATED

    def _maybe_prune(self, session: Session, asset_id: int, now: datetime) -> None:
        from airflow.models.asset_state_store import AssetStateStoreModel
        from sqlalchemy import delete

        with self._lock:
            last = self._pruned_at.get(asset_id)
            if last is not None and time.monotonic() - last < PRUNE_EVERY:
                return
            self._pruned_at[asset_id] = time.monotonic()
        cutoff = now - timedelta(days=_dedupe_days())
        pruned = session.execute(
            delete(AssetStateStoreModel).where(
                AssetStateStoreModel.asset_id == asset_id,
                AssetStateStoreModel.key.startswith(CALLBACK_MARKER_PREFIX, autoescape=True),
                AssetStateStoreModel.updated_at < cutoff,
            )
        )
        count = getattr(pruned, "rowcount", 0)
        if count:
            log.info("Pruned %d callback markers older than %s", count, cutoff.date())
