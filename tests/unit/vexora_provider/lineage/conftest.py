"""Lineage test fixtures: a real hook-lineage collector, and an environment without OpenLineage."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

# What the openlineage extra installs, and our modules that import it.
_OPENLINEAGE_MODULES = ("openlineage", "airflow.providers.openlineage")
_OUR_LINEAGE_MODULES = (
    "vexora_provider.lineage.datasets",
    "vexora_provider.lineage.facets",
    "vexora_provider.lineage.sync",
    "vexora_provider.lineage.warehouse",
)


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """
    Airflow's hook-lineage collector as it is where a lineage reader (OpenLineage) is enabled.

    ``get_hook_lineage_collector`` is a process-wide cache: cleared before and after, so no
    test sees another's lineage.
    """
    from airflow.sdk import lineage, plugins_manager

    monkeypatch.setattr(
        plugins_manager, "get_hook_lineage_readers_plugins", lambda: [lineage.HookLineageReader]
    )
    lineage.get_hook_lineage_collector.cache_clear()
    yield lineage.get_hook_lineage_collector()
    lineage.get_hook_lineage_collector.cache_clear()


@pytest.fixture
def without_openlineage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the OpenLineage provider and client unimportable, as if the extra were not installed."""
    for name in list(sys.modules):
        if name.startswith(_OPENLINEAGE_MODULES) or name in _OUR_LINEAGE_MODULES:
            monkeypatch.delitem(sys.modules, name)
    for name in _OPENLINEAGE_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
