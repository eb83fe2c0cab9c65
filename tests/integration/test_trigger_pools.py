"""Many triggers of one triggerer (one event loop) share one connection pool per connection."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.server import SimulatorServer
from vexora_provider.triggers.payout_status import PayoutStatusTrigger

pytestmark = pytest.mark.integration

TRIGGERS = 40


class PoolPerTrigger(PayoutStatusTrigger):
    share_pool = False


def run_triggers(server: SimulatorServer, trigger_class: type[PayoutStatusTrigger]) -> list[dict[str, Any]]:
    sim = server.sim
    batches = [
        sim.create_payouts(3, pending_polls=2, prefix=f"{trigger_class.__name__}{i}-")
        for i in range(TRIGGERS)
    ]
    triggers = [
        trigger_class(
            trade_nos=batch, vexora_conn_id="vexora_default", end_time=time.time() + 120, poll_interval=0.2
        )
        for batch in batches
    ]

    async def main() -> list[dict[str, Any]]:
        events = await asyncio.gather(*(trigger.run().__anext__() for trigger in triggers))
        return [event.payload for event in events]

    return asyncio.run(main())


@pytest.mark.parametrize(("trigger_class", "shared"), [(PayoutStatusTrigger, True), (PoolPerTrigger, False)])
def test_connections_opened(
    vexora_simulator: VexoraSimulator,
    monkeypatch: pytest.MonkeyPatch,
    trigger_class: type[PayoutStatusTrigger],
    shared: bool,
) -> None:
    vexora_simulator.add_fault("latency", latency_ms=20)
    with vexora_simulator.serve() as server:
        monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", server.airflow_connection("indonesia"))
        events = run_triggers(server, trigger_class)
        stats = vexora_simulator.stats()
    assert [event["status"] for event in events] == ["success"] * TRIGGERS
    assert stats["total"] == TRIGGERS * 3 * 3  # two pending answers, then the final one
    if shared:
        # One pool of at most 32 connections, kept alive from poll to poll.
        assert stats["connections"] <= 32
    else:
        assert stats["connections"] >= TRIGGERS
