"""Airflow plugins shipped with the provider (registered through the ``airflow.plugins`` entry point)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

__all__ = ["VexoraCallbackPlugin"]


class VexoraCallbackPlugin(AirflowPlugin):
    """
    Mounts the Vexora callback receiver on the API server at ``/vexora``.

    Airflow loads every plugin in every process, task processes included; the receiver (FastAPI,
    the event sink) is imported and built only when a process asks for ``fastapi_apps``, which
    only the API server does.
    """

    name = "vexora_callbacks"

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The receiver's app, built on first use."""
        from vexora_provider.plugins.callbacks import create_app

        return [{"app": create_app(), "url_prefix": "/vexora", "name": "Vexora callbacks"}]
