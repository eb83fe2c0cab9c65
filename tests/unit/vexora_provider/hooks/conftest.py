"""Fixtures for the hook tests: a connection in the environment, a scripted gateway, no real waits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from vexora_hook_support import FakeClock, ScriptedGateway, connection_json

from vexora_provider.hooks import _retry


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def conn_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Install ``vexora_default`` (or another id) from keyword overrides of the connection JSON."""

    def install(conn_id: str = "vexora_default", **overrides: Any) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(**overrides))

    install()
    return install


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Patch the retry module's clock and sleeps: backoffs and rate limits cost no real time."""
    fake = FakeClock()
    monkeypatch.setattr(_retry, "monotonic", fake.monotonic)
    monkeypatch.setattr(_retry, "sleep", fake.sleep)
    monkeypatch.setattr(_retry, "asleep", fake.asleep)
    return fake


@pytest.fixture
def gateway() -> ScriptedGateway:
    return ScriptedGateway()


@pytest.fixture
def hook(conn_env: Any, gateway: ScriptedGateway) -> Iterator[Any]:
    from vexora_provider.hooks.vexora import VexoraHook

    transport = httpx.MockTransport(gateway)
    made = VexoraHook(transport=transport, async_transport=transport)
    yield made
    made.close()
