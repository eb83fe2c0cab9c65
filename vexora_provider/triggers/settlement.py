"""A watcher for payouts assets: poll the warehouse's non-final payouts, announce each settlement once.

For deployments where Vexora's callbacks cannot reach Airflow. Use it in an ``AssetWatcher``::

    payouts_asset(
        "3060414594",
        watchers=[AssetWatcher(name="m1_settled", trigger=PayoutSettledTrigger(sql_conn_id="warehouse"))],
    )
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.sdk import BaseHook
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from vexora_provider.assets import (
    POLL_MEMORY_KEY,
    callback_marker_key,
    event_key,
    is_announced,
    payouts_uri,
    poll_memory,
    poll_memory_value,
    settlement_extra,
)
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutQueryError, PayoutStatus
from vexora_provider.operators.payout_status import DEFAULT_TABLE
from vexora_provider.warehouse import TableName, writer_for
from vexora_provider.warehouse.rows import is_final

if TYPE_CHECKING:
    from vexora_provider.hooks.vexora import VexoraAsyncSession

__all__ = ["DEFAULT_MAX_REMEMBERED", "PERSIST_DELAY", "PayoutSettledTrigger", "PollMemory"]

#: Trades remembered at most: about 50 KB of JSON, under the state store's 64 KiB value limit.
DEFAULT_MAX_REMEMBERED = 1000
#: Seconds between yielding events and saving them as announced. The triggerer persists a yielded
#: event a second or two later; saving sooner could mark an event announced that a crash then loses.
PERSIST_DELAY = 5.0

# Looked up at call time, so tests drive many polls without waiting.
sleep = asyncio.sleep


class PollMemory:
    """
    What the watcher announced, for trades the table still holds as non-final; bounded.

    :param trades: trade number → event key (the final state, or ``unknown-<code>``).
    :param limit: entries kept at most; past it the oldest announcement is forgotten.
    """

    def __init__(
        self, trades: Mapping[str, str] | None = None, *, limit: int = DEFAULT_MAX_REMEMBERED
    ) -> None:
        self.limit = limit
        self.trades: OrderedDict[str, str] = OrderedDict(trades or {})
        self.forgotten = 0
        self.dirty = False  # changed since the last value() was taken for saving
        self._trim()

    def _trim(self) -> None:
        while len(self.trades) > self.limit:
            self.trades.popitem(last=False)
            self.forgotten += 1

    def get(self, trade_no: str) -> str | None:
        """The event key announced for a trade, if any."""
        return self.trades.get(trade_no)

    def is_final(self, trade_no: str) -> bool:
        """Whether the trade was announced in a final state (it cannot change any more)."""
        return is_final(self.trades.get(trade_no))

    def remember(self, trade_no: str, key: str) -> None:
        """Record an announcement (newest last)."""
        self.trades[trade_no] = key
        self.trades.move_to_end(trade_no)
        self.dirty = True
        self._trim()

    def retain(self, non_final: Iterable[str]) -> bool:
        """Forget trades the table no longer holds as non-final; return whether any was dropped."""
        keep = set(non_final)
        gone = [t for t in self.trades if t not in keep]
        for trade_no in gone:
            del self.trades[trade_no]
        self.dirty = self.dirty or bool(gone)
        return bool(gone)

    def value(self) -> dict[str, Any]:
        """The state-store value (plain JSON); the memory counts as saved from here on."""
        self.dirty = False
        return poll_memory_value(self.trades)


class PayoutSettledTrigger(BaseEventTrigger):
    """
    Announce each payout of a merchant that became final (or got an undocumented code), once.

    Every ``poll_interval`` seconds it reads the merchant's non-final trade numbers from the
    warehouse status table (in a thread, never blocking the triggerer's loop), queries them
    through the hook's async bulk API, and yields one ``TriggerEvent`` per new settlement, its
    payload shaped like a callback's event ``extra`` with ``source: "poll"``. It never writes the
    table: keep it in sync with :class:`~vexora_provider.operators.payout_status.PayoutStatusToSqlOperator`.

    What it announced is kept in the asset state store, so a restarted triggerer does not announce
    it again; the store is saved a few seconds after the events, so a crash in between announces
    them twice (at-least-once). Trades the table no longer holds as non-final are forgotten, and
    at most ``max_remembered`` are kept. A settlement the callback receiver already announced is
    not announced again.

    :param vexora_conn_id: the ``vexora`` connection (its login is the merchant).
    :param sql_conn_id: the warehouse connection holding the status table.
    :param table: ``name`` or ``schema.name`` of the status table.
    :param poll_interval: seconds between polls.
    :param concurrency: status queries in flight.
    :param max_remembered: announcements remembered at most.
    """

    def __init__(
        self,
        *,
        sql_conn_id: str,
        vexora_conn_id: str = VexoraHook.default_conn_name,
        table: str = DEFAULT_TABLE,
        poll_interval: float = 60.0,
        concurrency: int = 16,
        max_remembered: int = DEFAULT_MAX_REMEMBERED,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        TableName.parse(table)  # refuse a bad name when the DAG is parsed, not in the triggerer
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if concurrency < 1 or max_remembered < 1:
            raise ValueError("concurrency and max_remembered must be at least 1")
        self.vexora_conn_id = vexora_conn_id
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.poll_interval = float(poll_interval)
        self.concurrency = int(concurrency)
        self.max_remembered = int(max_remembered)
        self._saves: deque[tuple[float, dict[str, Any]]] = deque()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize the trigger's plain-data kwargs and classpath."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "vexora_conn_id": self.vexora_conn_id,
                "sql_conn_id": self.sql_conn_id,
                "table": self.table,
                "poll_interval": self.poll_interval,
                "concurrency": self.concurrency,
                "max_remembered": self.max_remembered,
            },
        )

    # -- the warehouse ----------------------------------------------------------------------------

    def non_final_trade_nos(self, merchant_no: str) -> list[str]:
        """Read the merchant's trades the table holds in a non-final state (blocking; run in a thread)."""
        hook = BaseHook.get_connection(self.sql_conn_id).get_hook()  # type: ignore[no-untyped-call]
        if not isinstance(hook, DbApiHook):
            raise TypeError(f"connection {self.sql_conn_id!r} gives a {type(hook).__name__}, not a DbApiHook")
        writer = writer_for(hook, TableName.parse(self.table))
        try:
            return writer.non_final_trade_nos(merchant_no)
        finally:
            writer.close()

    # -- the asset state store ----------------------------------------------------------------------

    async def _open_store(self, merchant_no: str) -> tuple[Any, PollMemory]:
        """Return the asset state store accessor (``None`` outside a watcher) and the saved memory."""
        store: Any = self.asset_state_store
        value = None
        if store is not None:
            try:
                try:
                    value = await store.aget(POLL_MEMORY_KEY)
                except ValueError:
                    # One trigger watching several assets: use the merchant's payouts asset.
                    from airflow.sdk.execution_time.context import AssetStateStoreAccessor

                    store = AssetStateStoreAccessor(uri=payouts_uri(merchant_no))
                    value = await store.aget(POLL_MEMORY_KEY)
            except Exception as exc:
                self.log.warning("Reading the watcher's memory failed (%s); starting empty", exc)
        return store, PollMemory(poll_memory(value), limit=self.max_remembered)

    async def _save_due(self, store: Any) -> None:
        due = None
        while self._saves and self._saves[0][0] <= time.monotonic():
            due = self._saves.popleft()[1]
        if due is None or store is None:
            return
        try:
            await store.aset(POLL_MEMORY_KEY, due)
        except Exception as exc:
            self.log.warning("Saving the watcher's memory failed (%s); it is kept in memory", exc)

    async def _by_callback(self, store: Any, status: PayoutStatus) -> bool:
        if store is None:
            return False
        try:
            return await store.aget(callback_marker_key(status)) is not None
        except Exception:
            return False

    # -- the loop -------------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever; yield one event per new settlement."""
        while True:
            try:
                # A fresh hook each time: a connection fixed after a failure is read again.
                # The triggerer runs no task: there is no lineage to report.
                hook = VexoraHook(self.vexora_conn_id, hook_lineage=False)
                async with hook.async_session(concurrency=self.concurrency) as session:
                    async for event in self._watch(session):
                        yield event
            except Exception as exc:
                # A missing or broken connection: say so once per interval, stay alive for a fix.
                self.log.error(
                    "Watching Vexora payouts on %r failed: %s: %s",
                    self.vexora_conn_id,
                    type(exc).__name__,
                    exc,
                )
                await sleep(self.poll_interval)

    async def _watch(self, session: VexoraAsyncSession) -> AsyncIterator[TriggerEvent]:
        merchant_no = session.config.merchant_no
        store, memory = await self._open_store(merchant_no)
        while True:
            started = time.monotonic()
            try:
                non_final = await asyncio.to_thread(self.non_final_trade_nos, merchant_no)
            except Exception as exc:
                self.log.warning("Reading non-final payouts from %s failed: %s", self.table, exc)
                non_final = None
            if non_final is not None:
                memory.retain(non_final)
                async for event in self._poll(session, store, memory, non_final):
                    yield event
                if memory.dirty:
                    self._saves.append((time.monotonic() + PERSIST_DELAY, memory.value()))
                if memory.forgotten:
                    self.log.warning(
                        "%d announced payouts are still non-final in %s, more than max_remembered=%d: "
                        "the oldest may be announced again; sync the table",
                        len(memory.trades) + memory.forgotten,
                        self.table,
                        self.max_remembered,
                    )
                    memory.forgotten = 0
            await self._wait(store, started + self.poll_interval)

    async def _poll(
        self, session: VexoraAsyncSession, store: Any, memory: PollMemory, non_final: list[str]
    ) -> AsyncIterator[TriggerEvent]:
        to_poll = [t for t in non_final if not memory.is_final(t)]
        failed, first_failure, announced = 0, "", 0
        async for result in session.stream_payout_statuses(to_poll, concurrency=self.concurrency):
            if isinstance(result, PayoutQueryError):
                failed += 1
                first_failure = first_failure or result.message
                continue
            if not is_announced(result):
                continue
            key = event_key(result)
            if memory.get(result.trade_no) == key:
                continue
            if not await self._by_callback(store, result):
                yield TriggerEvent(settlement_extra(result, source="poll"))  # type: ignore[no-untyped-call]
                announced += 1
            memory.remember(result.trade_no, key)
        self.log.info(
            "Polled %d of %d non-final payouts in %s: %d newly settled, %d queries failed%s",
            len(to_poll),
            len(non_final),
            self.table,
            announced,
            failed,
            f" (first: {first_failure})" if failed else "",
        )

    async def _wait(self, store: Any, until: float) -> None:
        # Sleep until the next poll, waking to save the memory when a save falls due.
        while True:
            await self._save_due(store)
            now = time.monotonic()
            if now >= until:
                return
            wake = min(until, self._saves[0][0]) if self._saves else until
            await sleep(max(0.0, wake - now))
