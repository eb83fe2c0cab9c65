"""Hook-level lineage: the payouts a hook read or wrote, for tasks that only use the hook.

Airflow's hook-lineage collector is a no-op unless a lineage reader (the OpenLineage provider)
is installed and enabled. Each hook reports at most once per direction, whatever the number of
calls, so a bulk of 10,000 status queries costs one report.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from vexora_provider.assets import payouts_uri

__all__ = ["Direction", "PayoutsLineage"]

log = logging.getLogger(__name__)

Direction = Literal["input", "output"]


class PayoutsLineage:
    """
    Reports ``vexora://<merchant>/payouts`` as an input (status queries) or an output (creates) of
    the running task, once per direction.

    :param context: who reports (the hook): Airflow keeps one entry per context and asset.
    :param enabled: ``False`` for hooks of operators that report their own lineage, and of
        triggers (the triggerer is not a task).
    """

    __slots__ = ("_context", "_pending", "enabled")

    def __init__(self, context: Any, *, enabled: bool = True) -> None:
        self._context = context
        self.enabled = enabled
        self._pending: set[Direction] = {"input", "output"} if enabled else set()

    def read(self, merchant_no: str) -> None:
        """Report that the payouts of ``merchant_no`` were read (a no-op after the first time)."""
        if "input" in self._pending:
            self._report("input", merchant_no)

    def wrote(self, merchant_no: str) -> None:
        """Report that a payout of ``merchant_no`` was created (a no-op after the first time)."""
        if "output" in self._pending:
            self._report("output", merchant_no)

    def _report(self, direction: Direction, merchant_no: str) -> None:
        self._pending.discard(direction)
        try:
            from airflow.sdk.lineage import get_hook_lineage_collector

            collector = get_hook_lineage_collector()
            add = collector.add_input_asset if direction == "input" else collector.add_output_asset
            add(context=self._context, uri=payouts_uri(merchant_no))
        except Exception:
            # Lineage is a report about the call, never a reason for the call to fail.
            log.warning("Could not report the Vexora payouts %s to hook lineage", direction, exc_info=True)
