"""The triggerer benchmark's baseline: the stock sensor, but every trigger opens a pool of its own.

``bench/bench_triggerer.py`` puts this directory on ``PYTHONPATH`` of every Airflow component, so
the triggerer can import :class:`PoolPerTrigger` by its classpath.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NoReturn

from airflow.triggers.base import BaseTrigger

from vexora_provider.sensors.payout_status import PayoutStatusSensor
from vexora_provider.triggers.payout_status import PayoutStatusTrigger


class PoolPerTrigger(PayoutStatusTrigger):
    """:class:`PayoutStatusTrigger` with one connection pool per trigger run (no sharing)."""

    share_pool = False


class PoolPerTriggerSensor(PayoutStatusSensor):
    """:class:`PayoutStatusSensor` deferring to :class:`PoolPerTrigger` with the same arguments."""

    def defer(
        self,
        *,
        trigger: BaseTrigger,
        method_name: str,
        kwargs: dict[str, Any] | None = None,
        timeout: timedelta | int | float | None = None,
    ) -> NoReturn:
        _, arguments = trigger.serialize()
        super().defer(
            trigger=PoolPerTrigger(**arguments), method_name=method_name, kwargs=kwargs, timeout=timeout
        )
