"""The merchant's payouts at Vexora as an OpenLineage dataset, and the lineage of the sensor and the
create operator.

Importing this module needs the OpenLineage provider (``ImportError`` otherwise): import it inside
``get_openlineage_facets_*`` methods only.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.openlineage.facet import (
    DocumentationDatasetFacet,
    InputDataset,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
    SchemaDatasetFacet,
    SchemaDatasetFacetFields,
)
from airflow.providers.common.compat.openlineage.utils.utils import translate_airflow_asset
from airflow.providers.openlineage.extractors import OperatorLineage

from vexora_provider.assets import convert_asset_to_openlineage, payouts_asset

__all__ = ["VEXORA_FIELDS", "payouts_dataset", "payouts_lineage"]

#: The fields of a payout in Vexora's ``payoutQuery`` answer (``data``), with their JSON types.
VEXORA_FIELDS: dict[str, tuple[str, str]] = {
    "tradeNo": ("string", "the merchant's trade number"),
    "platFormTradeNo": ("string", "Vexora's id of the payout"),
    "status": ("string", "the status code, e.g. 0000"),
    "message": ("string", "the gateway's message"),
    "amount": ("decimal", "the amount actually paid"),
    "orderAmount": ("decimal", "the ordered amount"),
    "payAmount": ("decimal", "the disbursed amount"),
    "successTime": ("string", "yyyy-MM-dd HH:mm:ss in the region's local time"),
}


def _name_of(merchant_no: str) -> tuple[str, str]:
    # Through the converter registered for vexora:// assets, so lineage names the dataset as
    # the asset does; called directly where the provider is not registered (a source checkout).
    asset = payouts_asset(merchant_no)
    dataset = translate_airflow_asset(asset, None) or convert_asset_to_openlineage(asset, None)
    return str(dataset.namespace), str(dataset.name)


def _facets(merchant_no: str) -> dict[str, Any]:
    return {
        "schema": SchemaDatasetFacet(
            fields=[
                SchemaDatasetFacetFields(name=name, type=kind, description=text)
                for name, (kind, text) in VEXORA_FIELDS.items()
            ]
        ),
        "documentation": DocumentationDatasetFacet(
            description=f"Payouts of merchant {merchant_no} at the Vexora payment gateway"
        ),
    }


def payouts_dataset(merchant_no: str, *, output: bool = False, row_count: int | None = None) -> Any:
    """
    Return the merchant's payouts as an OpenLineage input (or output) dataset.

    Namespace ``vexora://<merchant_no>``, name ``payouts``: the ``vexora://<merchant_no>/payouts``
    asset, converted by the provider's registered converter.

    :param merchant_no: the merchant number (the ``vexora`` connection's login).
    :param output: return an output dataset (payouts created) instead of an input.
    :param row_count: for an output, the payouts this run created.
    """
    namespace, name = _name_of(merchant_no)
    facets = _facets(merchant_no)
    if not output:
        return InputDataset(namespace=namespace, name=name, facets=facets)
    statistics = {} if row_count is None else {"outputStatistics": _statistics(row_count)}
    return OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=statistics)


def _statistics(row_count: int) -> Any:
    return OutputStatisticsOutputDatasetFacet(rowCount=row_count)


def payouts_lineage(merchant_no: str, *, created: int | None = None, output: bool = False) -> Any:
    """
    Return the lineage of a task that reads (sensor) or creates (create operator) payouts.

    :param merchant_no: the merchant number.
    :param output: the task creates payouts: the payouts dataset is its output.
    :param created: for an output, the payouts this run created (``None``: not known yet).
    """
    if output:
        return OperatorLineage(outputs=[payouts_dataset(merchant_no, output=True, row_count=created)])
    return OperatorLineage(inputs=[payouts_dataset(merchant_no)])
