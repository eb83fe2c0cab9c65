"""A local Vexora gateway for tests, demos and benchmarks (like moto for AWS).

Three ways to run the same state: in-process httpx transports (no socket), a real loopback
server (``sim.serve()`` or the ``vexora-simulator serve`` command) and pytest fixtures
(``vexora_simulator``, ``vexora_simulator_server``, ``vexora_simulator_session``). See
``docs/simulator.md``. Importing this package never imports Airflow.
"""

from __future__ import annotations

from vexora_provider.testing.callbacks import DEFAULT_SCHEDULE, Delivery
from vexora_provider.testing.faults import FAULT_KINDS, FaultRule
from vexora_provider.testing.gateway import Gateway, Reply
from vexora_provider.testing.regions import REGION_VARIANTS, RegionVariant
from vexora_provider.testing.simulator import VexoraSimulator
from vexora_provider.testing.state import FAILED, PARTIAL, PENDING, SUCCESS, ManualClock, Payout
from vexora_provider.testing.transport import AsyncSimulatorTransport, SimulatorTransport

__all__ = [
    "DEFAULT_SCHEDULE",
    "FAILED",
    "FAULT_KINDS",
    "PARTIAL",
    "PENDING",
    "REGION_VARIANTS",
    "SUCCESS",
    "AsyncSimulatorTransport",
    "Delivery",
    "FaultRule",
    "Gateway",
    "ManualClock",
    "Payout",
    "RegionVariant",
    "Reply",
    "SimulatorTransport",
    "VexoraSimulator",
]
