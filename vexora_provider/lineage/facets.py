"""The provider's own OpenLineage run facet: what one warehouse sync did, in counts.

Importing this module needs the OpenLineage client (installed with the OpenLineage provider).
"""

from __future__ import annotations

from attrs import define
from openlineage.client.facet_v2 import RunFacet

__all__ = ["SCHEMA_URL", "SYNC_FACET", "VexoraSyncRunFacet"]

#: The key of :class:`VexoraSyncRunFacet` in a run's facets.
SYNC_FACET = "vexoraSync"
#: The facet's JSON schema, shipped beside this module.
SCHEMA_URL = (
    "https://raw.githubusercontent.com/vexora/airflow-provider-vexora/main/"
    "vexora_provider/lineage/VexoraSyncRunFacet.json#/$defs/VexoraSyncRunFacet"
)


@define
class VexoraSyncRunFacet(RunFacet):
    """
    The summary of one payout-status sync (the operator's return value) as a run facet.

    :param merchantNo: the merchant whose payouts were synced.
    :param table: the status table, ``[schema.]name``.
    :param errorsTable: the errors table.
    :param counts: the summary's counts (``total``, ``requested``, ``loaded``, ``failed``,
        ``skipped_terminal``, ``unstorable``, ``reversals``, ``retries`` …).
    :param byState: rows loaded per state.
    :param failedRatio: failed / requested.
    :param durationSeconds: how long the sync ran.
    """

    # camelCase, as OpenLineage facets are.
    merchantNo: str
    table: str
    errorsTable: str
    counts: dict[str, int]
    byState: dict[str, int]
    failedRatio: float
    durationSeconds: float

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL
