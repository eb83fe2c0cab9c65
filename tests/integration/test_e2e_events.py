"""End to end: settled payouts become asset events on a real Airflow, by callback and by watcher.

``airflow standalone`` (API server, scheduler, triggerer, dag-processor) runs in an isolated home
with two DAGs: the provider's example ``example_vexora_settlement_events`` (copied unchanged) on
merchant ``CALLBACKS``, and ``vexora_e2e_watcher`` on merchant ``WATCHED`` with a
``PayoutSettledTrigger`` watcher over a SQLite warehouse table. Two simulators, one per merchant,
run in this test process:

- the first settles payouts whose ``notifyUrl`` is the real plugin route, and delivers its
  signed callbacks on Vexora's (compressed) retry schedule;
- the second answers the watcher's polls.

The test proves: every callback is answered ``OK``; one asset event per settlement; none for a bad
signature, a pending callback, a redelivery or eight identical callbacks at once; the consumer
run books the trade numbers; the watcher announces each settlement exactly once; and neither
app secret appears in any log or in the metadata database.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.airflow_support import AIRFLOW, Standalone, airflow_env, free_port
from vexora_provider.signing import signed_body
from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.server import SimulatorServer
from vexora_provider.warehouse import SqliteWriter, TableName

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
CALLBACKS, WATCHED = "3060414594", "7000000002"
CALLBACK_SECRET = "e2e-callback-secret-b81f0c6d2a"
WATCH_SECRET = "e2e-watch-secret-5e93aa01c7"
BOOKING, WATCHER = "example_vexora_settlement_events", "vexora_e2e_watcher"
SETTLED = {"CB-1": "success", "CB-2": "failed", "CB-3": "partial"}
POLLED = {"W-1": "success", "W-2": "failed"}
DEADLINE = 300.0


@dataclass
class Run:
    """What the fixture set up and saw."""

    airflow: Standalone
    callbacks: VexoraSimulator
    route: str
    ledger: Path
    answers: dict[str, tuple[int, str]]


def jsonish(value: object) -> Any:
    return json.loads(value if isinstance(value, str) else bytes(value).decode())  # type: ignore[arg-type]


def events(airflow: Standalone, merchant_no: str) -> list[dict[str, Any]]:
    rows = airflow.query(
        "select e.extra from asset_event e join asset a on a.id = e.asset_id where a.uri = ? order by e.id",
        f"vexora://{merchant_no}/payouts",
    )
    return [jsonish(extra) for (extra,) in rows]


def settled_by(airflow: Standalone, merchant_no: str) -> list[str]:
    found = []
    for extra in events(airflow, merchant_no):
        extra = extra.get("payload", extra)
        found.append(extra["trade_no"])
    return found


def seen_by_runs(airflow: Standalone, dag_id: str) -> set[str]:
    rows = airflow.query("select value from xcom where dag_id = ? and key = 'return_value'", dag_id)
    return {trade_no for (value,) in rows for trade_no in jsonish(value)}


def warehouse(path: Path) -> None:
    """The status table as the sync creates it, with the watched merchant's payouts not yet final."""
    writer = SqliteWriter(None, TableName.parse("vexora_payout_status"))  # type: ignore[arg-type]
    now = datetime.now(UTC).isoformat()
    with sqlite3.connect(path) as conn:
        for statement in writer.ddl():
            conn.execute(statement)
        conn.executemany(
            "insert into vexora_payout_status (merchant_no, trade_no, state, fetched_at) values (?, ?, ?, ?)",
            [
                (WATCHED, "W-1", "pending", now),
                (WATCHED, "W-2", "pending", now),
                (WATCHED, "W-3", "pending", now),
                ("another", "W-9", "pending", now),
            ],
        )


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[SimulatorServer, SimulatorServer]]:
    with (
        VexoraSimulator(
            seed=11, merchant_no=CALLBACKS, secret=CALLBACK_SECRET, callback_time_scale=0.01
        ) as cb,
        VexoraSimulator(seed=12, merchant_no=WATCHED, secret=WATCH_SECRET) as polled,
        cb.serve() as cb_server,
        polled.serve() as polled_server,
    ):
        polled.add_payout("W-1", "success", pending_polls=2, amount="75.25")
        polled.add_payout("W-2", "failed", pending_polls=1)
        polled.add_payout("W-3", "pending")
        yield cb_server, polled_server


def wait_for(what: str, check: Any, airflow: Standalone, deadline: float) -> None:
    airflow.wait_until(check, timeout=deadline - time.monotonic(), describe=lambda: f"waiting for {what}")


def api_up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def post_all(route: str, body: dict[str, Any], copies: int) -> list[tuple[int, str]]:
    start = threading.Barrier(copies)

    def deliver(_: int) -> tuple[int, str]:
        with httpx.Client(timeout=30) as client:
            start.wait()
            response = client.post(route, json=body)
            return response.status_code, response.text

    with ThreadPoolExecutor(copies) as pool:
        return list(pool.map(deliver, range(copies)))


@pytest.fixture(scope="module")
def run(
    servers: tuple[SimulatorServer, SimulatorServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    if not AIRFLOW.exists():
        pytest.skip(f"no airflow executable at {AIRFLOW}")
    cb_server, polled_server = servers
    home = tmp_path_factory.mktemp("airflow-events")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "example_dags" / f"{BOOKING}.py", dags)
    shutil.copy(Path(__file__).parent / "dags_events" / f"{WATCHER}.py", dags)
    warehouse(home / "warehouse.db")
    ledger = home / "ledger.db"
    port = free_port()
    env = airflow_env(
        home,
        dags,
        port,
        AIRFLOW_CONN_VEXORA_DEFAULT=cb_server.airflow_connection("nigeria"),
        AIRFLOW_CONN_VEXORA_WATCH=polled_server.airflow_connection("nigeria", max_attempts=2),
        AIRFLOW_CONN_E2E_WAREHOUSE=json.dumps({"conn_type": "sqlite", "host": str(home / "warehouse.db")}),
        AIRFLOW_CONN_VEXORA_WAREHOUSE=json.dumps({"conn_type": "sqlite", "host": str(ledger)}),
        VEXORA_EXAMPLE_MERCHANT=CALLBACKS,
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="5",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
    )
    route = f"http://127.0.0.1:{port}/vexora/callbacks/vexora_default"
    airflow = Standalone(home, env)
    airflow.migrate()
    airflow.start()
    sim = cb_server.sim
    answers: dict[str, tuple[int, str]] = {}
    try:
        deadline = time.monotonic() + DEADLINE
        wait_for(
            "the API server, the consumer DAGs and the watcher",
            lambda: (
                api_up(port)
                and airflow.query("select 1 from asset_active where uri = ?", f"vexora://{CALLBACKS}/payouts")
                and airflow.query("select 1 from asset_watcher")
            ),
            airflow,
            deadline,
        )
        for trade_no, final in SETTLED.items():
            sim.add_payout(trade_no, final, pending_seconds=0.2, amount="250.00", notify_url=route)
        wait_for("the callbacks", lambda: len(sim.callbacks.deliveries) >= len(SETTLED), airflow, deadline)
        wait_for("their events", lambda: len(events(airflow, CALLBACKS)) >= len(SETTLED), airflow, deadline)

        # What Vexora may also send: a redelivery (a lost OK), twins at once, a forged and a pending one.
        sim.callbacks.redeliver("CB-1")
        sim.callbacks.wait_for(len(SETTLED) + 1, timeout=30)
        twins = post_all(route, sim.callbacks.body_for(sim.payout("CB-2")), copies=8)
        answers["twins"] = twins[0] if len(set(twins)) == 1 else (0, repr(twins))
        forged = httpx.post(route, json={**sim.callbacks.body_for(sim.payout("CB-3")), "amount": "9999.00"})
        answers["forged"] = (forged.status_code, forged.text)
        pending = httpx.post(
            route, json=signed_body({"tradeNo": "CB-4", "status": "0015", "amount": "5.00"}, CALLBACK_SECRET)
        )
        answers["pending"] = (pending.status_code, pending.text)

        wait_for(
            "the booking runs", lambda: set(SETTLED) <= seen_by_runs(airflow, BOOKING), airflow, deadline
        )
        wait_for(
            "the watcher's runs", lambda: set(POLLED) <= seen_by_runs(airflow, WATCHER), airflow, deadline
        )
        time.sleep(10)  # five more polls: a watcher that re-announces would show it now
        yield Run(airflow, sim, route, ledger, answers)
    finally:
        airflow.stop()


class TestSettlementEventsOnRealAirflow:
    def test_callbacks_are_answered_ok_and_make_one_event_each(self, run: Run) -> None:
        deliveries = run.callbacks.callbacks.deliveries
        assert deliveries, run.airflow.tail()
        assert all(d.ok and d.status == 200 for d in deliveries), [
            (d.trade_no, d.attempt, d.at, d.error) for d in deliveries
        ]
        extras = events(run.airflow, CALLBACKS)
        assert sorted((e["trade_no"], e["state"]) for e in extras) == sorted(SETTLED.items())
        cb1 = next(e for e in extras if e["trade_no"] == "CB-1")
        assert cb1["source"] == "callback"
        assert cb1["amount"] == "250.00"
        assert cb1["status_code"] == "0000"
        assert cb1["success_time"].endswith("+01:00")

    def test_redelivered_twin_forged_and_pending_callbacks_make_no_event(self, run: Run) -> None:
        assert [d.trade_no for d in run.callbacks.callbacks.deliveries].count("CB-1") == 2
        assert run.answers["twins"] == (200, "OK")
        assert run.answers["forged"] == (401, "FAIL")
        assert run.answers["pending"] == (200, "OK")
        assert sorted(settled_by(run.airflow, CALLBACKS)) == sorted(SETTLED)

    def test_consumer_runs_book_the_settled_trades_once(self, run: Run) -> None:
        assert set(SETTLED) <= seen_by_runs(run.airflow, BOOKING)
        with sqlite3.connect(run.ledger) as conn:
            booked = conn.execute("select trade_no, state, amount, source from payout_ledger").fetchall()
        announced = events(run.airflow, CALLBACKS)
        assert sorted(booked) == sorted(
            (e["trade_no"], e["state"], e["amount"], "callback") for e in announced
        )
        assert {t for t, *_ in booked} == set(SETTLED)

    def test_watcher_announces_each_settlement_exactly_once(self, run: Run) -> None:
        extras = events(run.airflow, WATCHED)
        assert all(e["from_trigger"] is True for e in extras)
        payloads = [e["payload"] for e in extras]
        assert sorted((p["trade_no"], p["state"]) for p in payloads) == sorted(POLLED.items())
        assert {p["source"] for p in payloads} == {"poll"}
        assert next(p for p in payloads if p["trade_no"] == "W-1")["amount"] == "75.25"
        assert set(POLLED) <= seen_by_runs(run.airflow, WATCHER)
        [(memory,)] = run.airflow.query(
            "select value from asset_state_store where key = 'vexora.poll.announced'"
        )
        assert jsonish(memory) == {"trades": POLLED}

    def test_secrets_in_no_log_and_not_in_the_metadata_database(self, run: Run) -> None:
        home = run.airflow.home
        logs = [p for p in (home / "logs").rglob("*") if p.is_file()] + [run.airflow.output]
        assert len(logs) >= 3
        for secret in (CALLBACK_SECRET, WATCH_SECRET):
            leaked = [p.name for p in logs if secret in p.read_text(errors="replace")]
            assert not leaked, "an app secret is in these logs"
        tables = [t for (t,) in run.airflow.query("select name from sqlite_master where type = 'table'")]
        assert "asset_event" in tables
        dump = "\n".join(
            str(row) for table in tables for row in run.airflow.query(f'select * from "{table}"')
        )
        assert "CB-1" in dump
        for secret in (CALLBACK_SECRET, WATCH_SECRET):
            leaked = secret in dump  # never ``assert secret not in dump``: it would print the secret
            assert not leaked, "an app secret is in the metadata database"
