"""End to end: SIGKILL the task process while it creates and waits; Airflow retries; one payout each.

A real Airflow (``airflow standalone``: LocalExecutor scheduler, triggerer, dag-processor, API
server) runs the DAGs of ``tests/integration/dags_create``: per seed, two mapped
``CreatePayoutOperator`` tasks with ``retries=3`` that create a payout and wait for it (poke or
deferred), against a simulator served from this test process.

A seeded kill plan names, for tries of each task, where its task process dies (SIGKILL, so no
handler runs): on a request, before the gateway sees it or after the gateway did the work and
before the answer arrives, or at a random moment after the try's process appears. The first try
of every map index 0 dies right after the gateway accepted its create -- the moment a naive
integration pays twice. Request kills happen inside the simulator's request handling, so they land
exactly there; the process is found by the title Airflow gives it (``airflow worker -- <ti id>``),
so nothing but this test's task processes is ever signalled.

The test proves: every task ends ``success``; the simulator accepted exactly one create per trade
number; each final XCom holds its payout's status (and ``created`` is false where an earlier,
killed try created it); and the app secret is in no log file, XCom, rendered field or the metadata
database.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.airflow_support import AIRFLOW, Standalone, airflow_env, free_port
from tests.integration.dags_create.vexora_e2e_create import (
    DEFERRABLE,
    SEEDS,
    TASK_ID,
    amount,
    dag_id,
    named_trade_no,
)
from vexora_provider.operators.create_payout import derive_trade_no
from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.gateway import Reply
from vexora_provider.testing.server import SimulatorServer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAGS = Path(__file__).parent / "dags_create"
SECRET = "kill-test-secret-5b2e8f0c91d4"
DEADLINE = 300.0  # seconds for Airflow to start and every task to end
MAPPED = 2
QUERY, CREATE = "queryPayOutResult", "disbursements"

TiKey = tuple[str, int, int]  # dag id, map index, try number


@dataclass(frozen=True)
class KillPoint:
    """
    Where one try dies.

    :param endpoint: kill on the ``nth`` request of the try to this endpoint; ``None``: a timed kill.
    :param nth: which request of the try to that endpoint.
    :param after: kill after the gateway handled the request (its answer is lost), not before.
    :param seconds: timed kill: this long after the try's task process appears.
    """

    endpoint: str | None = None
    nth: int = 1
    after: bool = False
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.endpoint is None:
            return f"{self.seconds:.2f}s after start"
        return f"{'after' if self.after else 'before'} {self.endpoint} #{self.nth}"


PLAN_SEED = 2088  # a seed whose plan puts every kind of kill where it can happen
# Every way a try can die; spread over the DAGs by a seeded shuffle so each kind is used.
KINDS = (
    lambda rng: KillPoint(QUERY, 1),  # the first query of the try, before anything is known
    lambda rng: KillPoint(QUERY, 1, after=True),  # the query answered, the answer lost
    lambda rng: KillPoint(CREATE, 1),  # while sending the create
    lambda rng: KillPoint(CREATE, 1, after=True),  # the create accepted, the answer lost
    lambda rng: KillPoint(QUERY, 2, after=True),  # while waiting in the worker (poke mode)
    lambda rng: KillPoint(seconds=round(rng.uniform(0.2, 6.0), 2)),  # anywhere
)


def kill_plans() -> dict[tuple[str, int], dict[int, KillPoint]]:
    """
    (dag id, map index) → try number → where that try dies; at most two tries of a task die.

    The first try of every map index 0 dies right after its create was accepted. ``retries=3``
    leaves a spare try: Airflow itself sometimes spends one, when the executor reports the end of
    a deferring workload after the resumed try was already queued.
    """
    rng = random.Random(PLAN_SEED)
    slots = [
        (seed, map_index, try_number) for seed in SEEDS for map_index, try_number in ((0, 2), (1, 1), (1, 2))
    ]
    kinds = [KINDS[i % len(KINDS)] for i in range(len(slots))]
    rng.shuffle(kinds)
    plans = {(dag_id(seed), 0): {1: KillPoint(CREATE, 1, after=True)} for seed in SEEDS}
    for (seed, map_index, try_number), kind in zip(slots, kinds, strict=True):
        plans.setdefault((dag_id(seed), map_index), {})[try_number] = kind(rng)
    return plans


def worker_pids(ti_id: str) -> list[int]:
    """
    The task process of this task instance: Airflow titles it ``airflow worker -- <ti id>``.

    Its supervisor (``airflow worker -- LocalExecutor: <ti id>``) is left alone: it is the one that
    notices the death and hands the try back to the scheduler.
    """
    title = f"airflow worker -- {uuid.UUID(ti_id)}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.replace(b"\0", b" ").strip() == title:
            pids.append(int(entry.name))
    return pids


class Killer:
    """
    Carries out the kill plans: request kills from inside the simulator, timed kills from a thread.

    :param airflow: the running Airflow, whose metadata database says which try is running.
    :param server: the simulator server; its gateway's ``handle`` is wrapped.
    """

    def __init__(self, airflow: Standalone, server: SimulatorServer) -> None:
        self.airflow = airflow
        self.sim = server.sim
        self.plans = kill_plans()
        self.requests: Counter[tuple[TiKey, str]] = Counter()
        self.fired: dict[TiKey, str] = {}
        self.missed: list[str] = []
        self._first_seen: dict[TiKey, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        gateway = server.sim.gateway
        self._handle = gateway.handle
        gateway.handle = self.handle  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._timed_kills, name="killer", daemon=True)
        self._thread.start()

    def running(self) -> list[tuple[str, TiKey, str]]:
        """(ti id, key, trade number) of every running create task."""
        rows = self.airflow.query(
            "select id, dag_id, run_id, map_index, try_number from task_instance "
            "where task_id = ? and state = 'running'",
            TASK_ID,
        )
        result = []
        for ti_id, dag, run_id, map_index, try_number in rows:
            key = (str(dag), int(map_index), int(try_number))  # type: ignore[call-overload]
            result.append((str(ti_id), key, trade_of(str(dag), str(run_id), int(map_index))))  # type: ignore[call-overload]
        return result

    def handle(self, method: str, path: str, merchant_no: str | None, body: bytes, query: str = "") -> Reply:
        endpoint = path.rsplit("/", 1)[-1]
        try:
            trade_no = json.loads(body).get("tradeNo")
        except (ValueError, AttributeError):
            trade_no = None
        target = self._planned(endpoint, trade_no) if endpoint in (QUERY, CREATE) else None
        if target is not None and not target[2].after:
            self._kill(*target)
            return Reply(200, b"", action="reset")  # the process died before the gateway saw it
        reply = self._handle(method, path, merchant_no, body, query)
        if target is not None:
            self._kill(*target)  # the gateway did the work; the answer goes to a dead process
        return reply

    def _planned(self, endpoint: str, trade_no: object) -> tuple[str, TiKey, KillPoint] | None:
        for ti_id, key, trade in self.running():
            if trade != trade_no:
                continue
            with self._lock:
                self.requests[key, endpoint] += 1
                nth = self.requests[key, endpoint]
                point = self.plans[key[:2]].get(key[2])
                if point is None or key in self.fired or point.endpoint != endpoint or point.nth != nth:
                    return None
            return ti_id, key, point
        return None

    def _kill(self, ti_id: str, key: TiKey, point: KillPoint) -> None:
        pids = worker_pids(ti_id)
        with self._lock:
            if key in self.fired:
                return
            if not pids:
                self.missed.append(f"{key} {point}: no task process")
                return
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            self.fired[key] = str(point)

    def _timed_kills(self) -> None:
        while not self._stop.wait(0.1):
            for ti_id, key, _ in self.running():
                point = self.plans[key[:2]].get(key[2])
                if point is None or point.endpoint is not None or key in self.fired:
                    continue
                if not worker_pids(ti_id):
                    continue  # not started yet, or between deferral and resumption
                first = self._first_seen.setdefault(key, time.monotonic())
                if time.monotonic() - first >= point.seconds:
                    self._kill(ti_id, key, point)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def report(self) -> str:
        lines = [
            f"{key}: plan {dict((t, str(p)) for t, p in plan.items())}" for key, plan in self.plans.items()
        ]
        return "\n".join([*lines, f"fired: {self.fired}", f"missed: {self.missed}"])


def trade_of(dag: str, run_id: str, map_index: int) -> str:
    seed = int(dag.rsplit("_", 1)[1])
    return named_trade_no(seed) if map_index == 0 else derive_trade_no(dag, run_id, TASK_ID, map_index)


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with VexoraSimulator(seed=23, secret=SECRET, create_pending_polls=2) as sim, sim.serve() as server:
        yield server


@pytest.fixture(scope="module")
def killed_run(
    simulator: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Standalone, Killer]]:
    if not AIRFLOW.exists():
        pytest.skip(f"no airflow executable next to {sys.executable}")
    home = tmp_path_factory.mktemp("airflow-e2e-kill")
    connection = simulator.airflow_connection("nigeria", read_timeout=5, max_attempts=2)
    env = airflow_env(
        home,
        DAGS,
        free_port(),
        AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="False",  # the DAGs ask for deferral themselves
        AIRFLOW_CONN_VEXORA_DEFAULT=connection,
    )
    airflow = Standalone(home, env)
    airflow.migrate()
    killer = Killer(airflow, simulator)
    airflow.start()
    expected = len(SEEDS) * MAPPED

    def states() -> list[str]:
        return [
            str(r[0]) for r in airflow.query("select state from task_instance where task_id = ?", TASK_ID)
        ]

    def finished() -> bool:
        now = states()
        return len(now) == expected and all(s in ("success", "failed", "upstream_failed") for s in now)

    try:
        airflow.wait_until(
            finished, timeout=DEADLINE, describe=lambda: f"tasks {states()}\n{killer.report()}"
        )
        yield airflow, killer
    finally:
        killer.stop()
        airflow.stop()


def instances(airflow: Standalone) -> list[tuple[str, str, int, int, str]]:
    rows = airflow.query(
        "select dag_id, run_id, map_index, try_number, state from task_instance where task_id = ?", TASK_ID
    )
    return [(str(d), str(r), int(m), int(t), str(s)) for d, r, m, t, s in rows]  # type: ignore[call-overload]


def xcom(airflow: Standalone, dag: str, map_index: int) -> dict[str, Any]:
    ((value,),) = airflow.query(
        "select value from xcom where dag_id = ? and task_id = ? and map_index = ? and key = 'return_value'",
        dag,
        TASK_ID,
        map_index,
    )
    return json.loads(value if isinstance(value, str) else bytes(value).decode())  # type: ignore[arg-type,no-any-return]


class TestCreatePayoutKilledOnRealAirflow:
    def test_every_task_converges_to_exactly_one_payout(self, killed_run: tuple[Standalone, Killer]) -> None:
        airflow, killer = killed_run
        rows = instances(airflow)
        assert len(rows) == len(SEEDS) * MAPPED
        assert {row[4] for row in rows} == {"success"}, f"{rows}\n{killer.report()}\n{airflow.tail()}"
        sim = killer.sim
        trades = [trade_of(dag, run_id, map_index) for dag, run_id, map_index, _, _ in rows]
        assert len(set(trades)) == len(trades)
        assert {t: sim.creates(t) for t in trades} == dict.fromkeys(trades, 1), killer.report()
        assert sum(sim.gateway.disbursed.values()) == len(trades)  # nothing else was paid either

    def test_the_final_xcom_holds_each_payouts_status(self, killed_run: tuple[Standalone, Killer]) -> None:
        airflow, killer = killed_run
        sim = killer.sim
        for dag, run_id, map_index, _, _ in instances(airflow):
            trade_no = trade_of(dag, run_id, map_index)
            value = xcom(airflow, dag, map_index)
            payout = sim.payout(trade_no)
            assert (value["trade_no"], value["state"], value["status_code"]) == (
                trade_no,
                "success",
                payout.status,
            )
            assert value["platform_trade_no"] == payout.platform_trade_no
            assert value["amount"] == amount(int(dag.rsplit("_", 1)[1]), map_index)
            assert isinstance(value["created"], bool)

    def test_kills_really_happened_and_were_retried(self, killed_run: tuple[Standalone, Killer]) -> None:
        airflow, killer = killed_run
        assert len(killer.fired) >= len(SEEDS), killer.report()
        for dag, _, map_index, try_number, _ in instances(airflow):
            killed = [key[2] for key in killer.fired if key[:2] == (dag, map_index)]
            assert all(try_number > k for k in killed), killer.report()  # every killed try was followed
            if map_index == 0:
                # Killed right after the gateway accepted the create: a later try found the payout.
                assert killer.fired.get((dag, 0, 1)) == f"after {CREATE} #1", killer.report()
                assert xcom(airflow, dag, 0)["created"] is False
        assert {int(d.rsplit("_", 1)[1]) for d, *_ in instances(airflow)} >= DEFERRABLE

    def test_logs_show_the_decision_and_never_the_secret(self, killed_run: tuple[Standalone, Killer]) -> None:
        airflow, _ = killed_run
        logs = [p for p in (airflow.home / "logs").rglob("*") if p.is_file()]
        assert len(logs) >= len(SEEDS) * MAPPED
        named = "".join(
            p.read_text(errors="replace")
            for p in logs
            if f"dag_id={dag_id(SEEDS[0])}" in str(p) and "map_index=0" in str(p)
        )
        assert f"Vexora payout {named_trade_no(SEEDS[0])} already exists" in named
        assert "not created again" in named
        assert not [p for p in logs if SECRET in p.read_text(errors="replace")]

    def test_secret_absent_from_xcom_rendered_fields_and_database(
        self, killed_run: tuple[Standalone, Killer]
    ) -> None:
        airflow, _ = killed_run
        rendered = airflow.query(
            "select rendered_fields from rendered_task_instance_fields where task_id = ?", TASK_ID
        )
        assert rendered
        assert any("accountNo" in str(r[0]) for r in rendered)  # the check looks at real rendered fields
        # Say where the secret leaked, never what it is: a failing ``assert SECRET not in text``
        # (or a failing assert on a call that takes the secret) prints it.
        leaked = sum(SECRET in str(r[0]) for r in rendered)
        assert not leaked, f"the app secret is in {leaked} rendered-fields row(s)"
        leaked = len(airflow.query("select 1 from xcom where cast(value as text) like ?", f"%{SECRET}%"))
        assert not leaked, f"the app secret is in {leaked} XCom row(s)"
        for database in airflow.home.glob("airflow.db*"):
            leaked = SECRET.encode() in database.read_bytes()
            assert not leaked, f"the app secret is in {database.name}"
