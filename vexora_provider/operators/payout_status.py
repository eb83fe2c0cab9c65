"""Keep a warehouse table of Vexora payout statuses in sync: fetch concurrently, upsert in batches."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowException

from vexora_provider._text import count
from vexora_provider.assets import merchant_of
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.operators._settled import SETTLED_LIMIT, SettledTrades
from vexora_provider.operators._sync import SyncCounters, WarehouseSync
from vexora_provider.trade_nos import (
    LiteralTradeNosRendering,
    is_template,
    refuse_literal_mistakes,
)
from vexora_provider.warehouse import TableName, writer_for

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

__all__ = ["DEFAULT_TABLE", "PayoutStatusToSqlOperator"]

DEFAULT_TABLE = "vexora_payout_status"


class PayoutStatusToSqlOperator(LiteralTradeNosRendering, BaseOperator):
    """
    Fetch the status of many payouts from Vexora and upsert them into a warehouse table.

    Statuses are fetched concurrently through :class:`~vexora_provider.hooks.vexora.VexoraHook`
    (its rate limit and retries apply) and written in batches, one set-based upsert per batch in one
    transaction, to ``table`` keyed on ``(merchant_no, trade_no)``. Trades whose status could not be
    fetched, or whose answer the table cannot hold exactly, go to ``<table>_errors`` and never
    overwrite a known status. The database keeps, per trade, a final state over a non-final one and
    otherwise the later fetch, so overlapping syncs on one table converge and a status never goes
    back. Returns a small summary.

    With a ``vexora://<merchant>/payouts`` asset (:func:`~vexora_provider.assets.payouts_asset`) in
    ``outlets``, its outlet event's ``extra`` announces the trades that became final in this run:
    ``{"source": "sync", "merchant_no", "settled": [{"trade_no", "state"}, …], "counts": {state: n},
    "total", "truncated"}``, listing at most ``SETTLED_LIMIT`` (1,000) trades and counting all.

    :param sql_conn_id: the warehouse connection; any connection whose hook is a common-sql
        ``DbApiHook`` (SQLite, PostgreSQL and MySQL/MariaDB have fast paths).
    :param trade_nos: trade numbers to refresh: a list, one trade number, or an ``XComArg`` such as
        ``task.output`` (a template field, so the upstream dependency is wired). The provider's
        trade-number rule applies: entries are stripped, each trade is fetched once (the summary's
        ``duplicates`` counts the repeats), a string such as ``"A,B"`` is refused when the DAG is
        parsed (did you mean a list?), and an entry that is not a trade number becomes that
        entry's error row.
    :param trade_nos_sql: instead of ``trade_nos``, a query run on the warehouse whose first column
        is the trade numbers (e.g. every payout not yet terminal); may be a ``.sql`` template file.
        Its values follow the same rule (``bytes`` are decoded as UTF-8, integers taken as their
        digits); NULLs are left out, with a warning.
    :param vexora_conn_id: the ``vexora`` connection.
    :param table: ``name`` or ``schema.name`` of the status table; each part
        ``[A-Za-z_][A-Za-z0-9_]*``, anything else is refused before any SQL runs.
    :param create_table: create the status and errors tables when they do not exist.
    :param only_non_terminal: skip, and count as skipped, trades the table already holds in a
        terminal state (success, partial, failed): Vexora never changes those.
    :param concurrency: requests in flight to the gateway.
    :param batch_size: rows per upsert transaction; memory is bounded by about two batches.
    :param max_failed_ratio: fail the task, after loading everything it could, when
        failed / requested exceeds this (default 0: any failure fails the task).
    :param progress_interval: seconds between progress lines when no batch completes sooner.

    With the OpenLineage provider installed (the ``openlineage`` extra), the task reports the
    merchant's payouts as its input, the status and errors tables as outputs with the rows each
    run wrote, and its counts and failed trades as run facets (see the lineage docs).
    """

    template_fields: Sequence[str] = ("trade_nos", "trade_nos_sql", "table", "sql_conn_id", "vexora_conn_id")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"trade_nos_sql": "sql", "trade_nos": "py"}
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        sql_conn_id: str,
        trade_nos: Sequence[str] | Any | None = None,
        trade_nos_sql: str | None = None,
        vexora_conn_id: str = VexoraHook.default_conn_name,
        table: str = DEFAULT_TABLE,
        create_table: bool = True,
        only_non_terminal: bool = True,
        concurrency: int = 32,
        batch_size: int = 1000,
        max_failed_ratio: float = 0.0,
        progress_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (trade_nos is None) == (trade_nos_sql is None):
            raise ValueError("give exactly one of trade_nos and trade_nos_sql")
        if concurrency < 1 or batch_size < 1:
            raise ValueError("concurrency and batch_size must be at least 1")
        if not 0.0 <= max_failed_ratio <= 1.0:
            raise ValueError("max_failed_ratio must be between 0 and 1")
        if progress_interval <= 0:
            raise ValueError("progress_interval must be positive")
        if not is_template(table):
            TableName.parse(table)  # refuse early; checked again after templating
        if trade_nos is not None:
            # One bad entry costs one trade (its error row), so only the whole value is judged now.
            refuse_literal_mistakes(trade_nos, param="trade_nos", entries=False)
        self.sql_conn_id = sql_conn_id
        self.trade_nos = trade_nos
        self.trade_nos_sql = trade_nos_sql
        self.vexora_conn_id = vexora_conn_id
        self.table = table
        self.create_table = create_table
        self.only_non_terminal = only_non_terminal
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.max_failed_ratio = max_failed_ratio
        self.progress_interval = progress_interval
        self._last_sync: tuple[WarehouseSync, TableName] | None = None  # for the lineage methods

    @cached_property
    def hook(self) -> VexoraHook:
        """The Vexora hook (connection resolved lazily, on first use)."""
        return VexoraHook(self.vexora_conn_id, hook_lineage=False)  # the operator reports its own

    def get_db_hook(self) -> DbApiHook:
        """Return the warehouse hook; the connection's type decides which (any ``DbApiHook``)."""
        hook = BaseHook.get_connection(self.sql_conn_id).get_hook()  # type: ignore[no-untyped-call]
        if not isinstance(hook, DbApiHook):
            raise AirflowException(
                f"connection {self.sql_conn_id!r} gives a {type(hook).__name__}, not a common-sql DbApiHook"
            )
        return hook

    def execute(self, context: Context) -> dict[str, Any]:
        """Sync the statuses and return the summary; fail after loading if too many failed."""
        table = TableName.parse(self.table)
        announce = self._payouts_outlets()
        writer = writer_for(self.get_db_hook(), table)
        self.log.info(
            "Syncing Vexora payout statuses into %s (%s) with concurrency %d, batches of %d",
            table,
            writer.dialect,
            self.concurrency,
            self.batch_size,
        )
        sync = WarehouseSync(
            hook=self.hook,
            writer=writer,
            batch_size=self.batch_size,
            concurrency=self.concurrency,
            only_non_terminal=self.only_non_terminal,
            create_table=self.create_table,
            progress_interval=self.progress_interval,
            log=self.log,
            settled=SettledTrades(limit=SETTLED_LIMIT) if announce else None,
        )
        self._last_sync = (sync, table)
        # A TradeNosError (an AirflowFailException) fails the task without retries.
        counters = sync.run(trade_nos=self.trade_nos, trade_nos_sql=self.trade_nos_sql)
        summary = _summary(counters, sync, table)
        if sync.settled is not None:
            for asset in announce:
                extra = sync.settled.extra(self.hook.config.merchant_no)
                context["outlet_events"][asset].extra.update(extra)
        if counters.requested and counters.failed / counters.requested > self.max_failed_ratio:
            raise AirflowException(
                f"{counters.failed} of {count(counters.requested, 'payout status lookup')} failed "
                f"(ratio {summary['failed_ratio']} > max_failed_ratio {self.max_failed_ratio}); "
                f"{count(counters.loaded, 'status')} loaded into {table}, the failures are recorded in "
                f"{table.errors} (first: {', '.join(counters.failed_sample)})"
            )
        return summary

    # OpenLineage: called by the OpenLineage provider's listener, when it is installed ------------

    def get_openlineage_facets_on_start(self) -> OperatorLineage[Any, Any] | None:
        """The payouts read and the tables written (``None`` without the OpenLineage provider)."""
        return self._lineage(done=False)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any] | None:
        """The datasets, the rows this run wrote, its counts and its failed trades."""
        return self._lineage(done=True)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any] | None:
        """As on completion, with what the run committed before it failed."""
        return self._lineage(done=True)

    def _lineage(self, *, done: bool) -> OperatorLineage[Any, Any] | None:
        try:
            from vexora_provider.lineage.sync import SyncResult, sync_lineage
        except ImportError:
            return None
        result = None
        if self._last_sync is not None:
            sync, table = self._last_sync
            db_hook = sync.writer.hook
            if done:  # the counters, as committed: no trade is counted twice
                failures = list(sync.counters.failures)
                result = SyncResult(summary=_summary(sync.counters, sync, table), failures=failures)
        else:
            table, db_hook = TableName.parse(self.table), self.get_db_hook()
        return sync_lineage(  # type: ignore[no-any-return]
            merchant_no=self.hook.config.merchant_no,
            hook=db_hook,
            table=table,
            trade_nos_sql=self.trade_nos_sql,
            result=result,
        )

    def _payouts_outlets(self) -> list[Any]:
        """The ``vexora://`` payouts assets in ``outlets``; each must be this connection's merchant."""
        assets = [a for a in self.outlets if merchant_of(str(getattr(a, "uri", ""))) is not None]
        if assets:
            merchant_no = self.hook.config.merchant_no
            for asset in assets:
                if merchant_of(asset.uri) != merchant_no:
                    raise AirflowException(
                        f"outlet {asset.uri} is another merchant's payouts asset: connection "
                        f"{self.vexora_conn_id!r} is merchant {merchant_no}; "
                        f"use payouts_asset({merchant_no!r})"
                    )
        return assets


def _summary(counters: SyncCounters, sync: WarehouseSync, table: TableName) -> dict[str, Any]:
    stats = sync.stats
    requested = counters.requested
    return {
        "table": str(table),
        "errors_table": str(table.errors),
        "total": counters.total,
        "duplicates": counters.duplicates,
        "skipped_terminal": counters.skipped,
        "requested": requested,
        "loaded": counters.loaded,
        "failed": counters.failed,
        "failed_ratio": round(counters.failed / requested, 6) if requested else 0.0,
        "by_state": dict(sorted(counters.by_state.items())),
        "failed_sample": list(counters.failed_sample),
        "failures_superseded": counters.superseded,
        "unstorable": counters.unstorable,
        "reversals": counters.reversals,
        "batches": counters.batches,
        "retries": stats.retries if stats else 0,
        "rate_limited": stats.rate_limited if stats else 0,
        "conflict_retries": sync.writer.conflict_retries,
        "duration_s": round(counters.elapsed, 3),
    }
