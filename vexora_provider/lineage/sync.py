"""Lineage of :class:`~vexora_provider.operators.payout_status.PayoutStatusToSqlOperator`.

In: the merchant's payouts at Vexora, and the tables ``trade_nos_sql`` reads. Out: the status
table and its errors table, each with its schema, column lineage from the Vexora fields and
(once the sync ran) the rows this run wrote. Run facets: the sync's counts
(:class:`~vexora_provider.lineage.facets.VexoraSyncRunFacet`) and the failed trades
(``extractionError``, the first ``FAILURE_DETAIL_LIMIT`` with the total).

Importing this module needs the OpenLineage provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.openlineage.facet import (
    ColumnLineageDatasetFacet,
    Error,
    ExtractionErrorRunFacet,
    Fields,
    InputField,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
    SchemaDatasetFacet,
    SchemaDatasetFacetFields,
)
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.generated.column_lineage_dataset import Transformation

from vexora_provider.lineage.datasets import VEXORA_FIELDS, payouts_dataset
from vexora_provider.lineage.facets import SYNC_FACET, VexoraSyncRunFacet
from vexora_provider.lineage.warehouse import TableNaming, naming_for, query_lineage
from vexora_provider.warehouse import writer_for
from vexora_provider.warehouse.schema import error_column_types, status_column_types

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from vexora_provider.operators._sync import FailedTrade
    from vexora_provider.warehouse import TableName

__all__ = ["ERROR_TEXT_LIMIT", "SyncResult", "sync_lineage"]

#: Characters of one failed trade's error text in the ``extractionError`` facet.
ERROR_TEXT_LIMIT = 300

# column -> (Vexora fields it comes from, transformation subtype, how)
_Lineage = Mapping[str, tuple[Sequence[str], str, str]]
STATUS_LINEAGE: _Lineage = {
    "trade_no": (("tradeNo",), "IDENTITY", "the trade number"),
    "platform_trade_no": (("platFormTradeNo",), "IDENTITY", "Vexora's id"),
    "status_code": (("status",), "IDENTITY", "the status code as sent"),
    "state": (("status",), "TRANSFORMATION", "the code classified by the status map"),
    "message": (("message",), "IDENTITY", "the gateway's message"),
    "amount": (("amount",), "IDENTITY", "exact decimal, never rounded"),
    "order_amount": (("orderAmount",), "IDENTITY", "exact decimal, never rounded"),
    "pay_amount": (("payAmount",), "IDENTITY", "exact decimal, never rounded"),
    "success_time": (("successTime",), "TRANSFORMATION", "region local time converted to UTC"),
    "raw": (tuple(VEXORA_FIELDS), "TRANSFORMATION", "the answer's data object as JSON"),
}
ERRORS_LINEAGE: _Lineage = {
    "trade_no": (("tradeNo",), "IDENTITY", "the trade number asked for (escaped if not printable)"),
}


@dataclass(frozen=True)
class SyncResult:
    """
    What a sync run did, for the COMPLETE (or FAIL) event.

    :param summary: the operator's summary (or, after a failure, what was committed so far).
    :param failures: the first failed trades with their causes.
    """

    summary: Mapping[str, Any]
    failures: Sequence[FailedTrade]


def _column_lineage(source: Any, lineage: _Lineage) -> Any:
    return ColumnLineageDatasetFacet(
        fields={
            column: Fields(
                inputFields=[
                    InputField(
                        namespace=source.namespace,
                        name=source.name,
                        field=name,
                        transformations=[Transformation(type="DIRECT", subtype=subtype, description=how)],
                    )
                    for name in fields
                ],
                transformationType="",
                transformationDescription="",
            )
            for column, (fields, subtype, how) in lineage.items()
        }
    )


def _table(
    naming: TableNaming,
    table: TableName,
    columns: Mapping[str, str],
    lineage: _Lineage,
    source: Any,
    row_count: int | None,
) -> Any:
    facets = {
        "schema": SchemaDatasetFacet(
            fields=[SchemaDatasetFacetFields(name=name, type=kind) for name, kind in columns.items()]
        ),
        "columnLineage": _column_lineage(source, lineage),
    }
    output_facets: dict[str, Any] = {}
    if row_count is not None:
        output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=row_count)
    return OutputDataset(
        namespace=naming.namespace,
        name=naming.name(table.name, table.schema),
        facets=facets,
        outputFacets=output_facets,
    )


def _count(summary: Mapping[str, Any], key: str) -> int:
    value = summary.get(key, 0)
    return value if isinstance(value, int) else 0


def _run_facets(merchant_no: str, result: SyncResult) -> dict[str, Any]:
    summary = result.summary
    counts = {k: v for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)}
    facets: dict[str, Any] = {
        SYNC_FACET: VexoraSyncRunFacet(
            merchantNo=merchant_no,
            table=str(summary.get("table", "")),
            errorsTable=str(summary.get("errors_table", "")),
            counts=counts,
            byState=dict(summary.get("by_state", {})),
            failedRatio=float(summary.get("failed_ratio", 0.0)),
            durationSeconds=float(summary.get("duration_s", 0.0)),
        )
    }
    failed = _count(summary, "failed")
    if failed:
        facets["extractionError"] = ExtractionErrorRunFacet(
            totalTasks=_count(summary, "requested"),
            failedTasks=failed,
            errors=[
                Error(errorMessage=f"{f.error_type}: {f.error}"[:ERROR_TEXT_LIMIT], task=f.trade_no)
                for f in result.failures
            ],
        )
    return facets


def sync_lineage(
    *,
    merchant_no: str,
    hook: DbApiHook,
    table: TableName,
    trade_nos_sql: str | None,
    result: SyncResult | None,
) -> Any:
    """
    Return the sync's ``OperatorLineage``: datasets only before the run, with counts after it.

    Asks the warehouse for its default schema (or SQLite for its file), never the gateway.

    :param merchant_no: the connection's merchant.
    :param hook: the warehouse hook.
    :param table: the status table.
    :param trade_nos_sql: the query the trade numbers come from, if any.
    :param result: what the run did; ``None`` for the START event.
    """
    source = payouts_dataset(merchant_no)
    inputs: list[Any] = [source]
    outputs: list[Any] = []
    job_facets: dict[str, Any] = {}
    writer = writer_for(hook, table)
    naming = naming_for(hook, writer)
    if naming is not None:
        summary = result.summary if result is not None else None
        outputs = [
            _table(
                naming,
                table,
                status_column_types(writer.types),
                STATUS_LINEAGE,
                source,
                None if summary is None else _count(summary, "loaded"),
            ),
            _table(
                naming,
                table.errors,
                error_column_types(writer.types),
                ERRORS_LINEAGE,
                source,
                None if summary is None else _count(summary, "failed"),
            ),
        ]
        if trade_nos_sql:
            read, job_facets = query_lineage(trade_nos_sql, naming)
            inputs.extend(read)
    run_facets = {} if result is None else _run_facets(merchant_no, result)
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets, job_facets=job_facets)
