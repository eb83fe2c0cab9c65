"""OpenLineage, end to end: ``dag.test()`` of a DAG using every provider task, in a fresh interpreter.

One run with the OpenLineage provider and a file transport: the START/COMPLETE events name the
datasets the way the docs say (SQLite and PostgreSQL warehouses, the Vexora payouts, the tables
``trade_nos_sql`` reads) with schemas, row counts and failed trades. One run of the same DAG with
the provider made unimportable: the same tasks succeed, the same rows land, nothing is emitted.
Both runs send the gateway exactly the same requests: lineage never asks Vexora anything.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import sysconfig
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.operator_support import Warehouse, dsn_connection, run_sql, select
from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator
from vexora_provider.testing import VexoraSimulator
from vexora_provider.warehouse.rows import ERROR_COLUMNS, STATUS_COLUMNS

pytestmark = pytest.mark.integration

DAGS = Path(__file__).parent / "dags_lineage"
DAG_ID = "vexora_lineage"
BAD_TRADE = "X" * 40  # longer than a trade number can be: fails before any request
# What two runs of the DAG must agree on (success_time and raw carry the simulator's clock).
COMPARED = "trade_no, platform_trade_no, status_code, state, message, amount, order_amount, pay_amount"
# What installing the openlineage extra adds to an environment.
OPENLINEAGE_PACKAGES = ("openlineage", "openlineage_sql")
OPENLINEAGE_DISTRIBUTIONS = ("openlineage_", "apache_airflow_providers_openlineage-")

RUNNER = textwrap.dedent(
    """
    import json

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder={dags!r})
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[{dag_id!r}]
    run = dag.test()
    print("STATES", json.dumps({{ti.task_id: ti.state for ti in run.get_task_instances()}}))
    lineage = [dag.get_task(t).get_openlineage_facets_on_start() for t in ("wait_poke", "create")]
    print("LINEAGE", json.dumps([x is not None for x in lineage]))
    """
)


def _mirror(source: Path, target: Path, skip: Callable[[Path], bool]) -> None:
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if not skip(entry):
            (target / entry.name).symlink_to(entry)


def python_without_openlineage(root: Path) -> Path:
    """
    A virtualenv with every package of this one but the OpenLineage provider and client, as if the
    ``openlineage`` extra had never been installed (symlinks, so it takes a second to build).
    """
    packages = Path(sysconfig.get_paths()["purelib"])
    site = root / "site-packages"

    def skip(entry: Path) -> bool:
        return entry.name in (*OPENLINEAGE_PACKAGES, "airflow") or entry.name.startswith(
            OPENLINEAGE_DISTRIBUTIONS
        )

    _mirror(packages, site, skip)
    _mirror(packages / "airflow", site / "airflow", lambda e: e.name == "providers")
    _mirror(
        packages / "airflow" / "providers", site / "airflow" / "providers", lambda e: e.name == "openlineage"
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    (lib,) = (root / "venv" / "lib").glob("python3*")
    # Processes the .pth files of the mirror too (the editable install of this project).
    (lib / "site-packages" / "mirror.pth").write_text(f"import site; site.addsitedir({str(site)!r})\n")
    return root / "venv" / "bin" / "python"


@dataclass
class DagRun:
    """What one ``dag.test()`` left behind."""

    states: dict[str, str]
    lineage_methods: list[bool]
    events: list[dict[str, Any]]
    summaries: dict[str, dict[str, Any]]
    requests: dict[str, Any]
    sqlite_file: Path
    pg_table: str
    pg_batches: str
    merchant_no: str
    secret: str
    output: str

    def event(self, task_id: str, kind: str) -> dict[str, Any]:
        """The task's last event of ``kind`` (a deferred task starts twice)."""
        found = [
            e for e in self.events if e["job"]["name"] == f"{DAG_ID}.{task_id}" and e["eventType"] == kind
        ]
        assert found, (task_id, kind, [(e["job"]["name"], e["eventType"]) for e in self.events])
        return found[-1]

    def sqlite_rows(self, table: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.sqlite_file) as db:
            return db.execute(f"SELECT {COMPARED} FROM {table} ORDER BY trade_no").fetchall()

    def pg_rows(self) -> list[tuple[Any, ...]]:
        return select("wh_postgres", f"SELECT {COMPARED} FROM {self.pg_table} ORDER BY trade_no")


def printed(stdout: str, marker: str) -> Any:
    """The JSON the runner printed after ``marker`` (Airflow logs to stdout too)."""
    return json.loads([x for x in stdout.splitlines() if x.startswith(f"{marker} ")][-1][len(marker) + 1 :])


def run_dag(base: Path, pg_tables: list[str], *, openlineage: bool) -> DagRun:
    """Run the DAG against a fresh simulator; its PostgreSQL tables are added to ``pg_tables``."""
    base.mkdir(parents=True)
    tag = uuid.uuid4().hex[:8]
    pg_table, pg_batches = f"vx_lineage_{tag}", f"vx_batches_{tag}"
    pg_tables.extend([pg_table, f"{pg_table}_errors", pg_batches])
    env = {
        **os.environ,
        "AIRFLOW_CONN_WH_SQLITE": json.dumps({"conn_type": "sqlite", "host": str(base / "w.db")}),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {
                    "name": "lineage",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(DAGS)},
                }
            ]
        ),
        # Configured in both runs: without the provider, the setting must be harmless.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(base / "events.jsonl"), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "vexora_tests",
        "PYTHONWARNINGS": "ignore",
    }
    with VexoraSimulator(seed=5) as sim, sim.serve() as server:
        sim.add_payout("LIN-1", "success", pending_polls=0, amount="100.50")
        sim.add_payout("LIN-2", "partial", pending_polls=0, amount="40.25")
        sim.add_payout("LIN-3", "failed", pending_polls=0)
        sim.add_payout("LIN-4", "pending")
        sim.add_payout("LIN-D", "success", pending_polls=2)
        sim.add_payout("LIN-C", "success", pending_polls=0, created=False, amount="150.00")
        env.update(server.airflow_env())
        run_sql("wh_postgres", f"CREATE TABLE {pg_batches} (trade_no TEXT, batch_id TEXT)")
        rows = ", ".join(f"('{t}', 'b1')" for t in ("LIN-1", "LIN-2", "LIN-3", "LIN-4", BAD_TRADE))
        run_sql("wh_postgres", f"INSERT INTO {pg_batches} VALUES {rows}")
        env["VEXORA_LINEAGE_PLAN"] = json.dumps(
            {
                "trades": ["LIN-1", "LIN-2", "LIN-3", "LIN-4", BAD_TRADE],
                "pg_table": pg_table,
                "pg_sql": f"SELECT trade_no FROM {pg_batches} WHERE batch_id = 'b1'",
                "deferred_trade": "LIN-D",
                "create_trade": "LIN-C",
                "summary_file": str(base / "summaries.json"),
            }
        )
        python = Path(sys.executable) if openlineage else python_without_openlineage(base / "env")
        script = RUNNER.format(dags=str(DAGS), dag_id=DAG_ID)
        done = subprocess.run(
            [str(python), "-c", script], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-5000:]
        requests = sim.stats(trades=True)
    events_file = base / "events.jsonl"
    events = (
        [json.loads(line) for line in events_file.read_text().splitlines()] if events_file.exists() else []
    )
    return DagRun(
        states=printed(done.stdout, "STATES"),
        lineage_methods=printed(done.stdout, "LINEAGE"),
        events=events,
        summaries=json.loads((base / "summaries.json").read_text()),
        requests=requests,
        sqlite_file=base / "w.db",
        pg_table=pg_table,
        pg_batches=pg_batches,
        merchant_no=sim.merchant_no,
        secret=sim.secret,
        output=output,
    )


@pytest.fixture(scope="module")
def pg_tables(postgres_dsn: str) -> Iterator[list[str]]:
    """The ``wh_postgres`` connection for the module; the tables the runs made are dropped after."""
    tables: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_WH_POSTGRES", dsn_connection(postgres_dsn, "postgres"))
        yield tables
        for table in tables:
            run_sql("wh_postgres", f"DROP TABLE IF EXISTS {table}")


@pytest.fixture(scope="module")
def with_openlineage(
    tmp_path_factory: pytest.TempPathFactory, pg_tables: list[str], vexora_airflow_db: str
) -> DagRun:
    return run_dag(tmp_path_factory.mktemp("lineage") / "with", pg_tables, openlineage=True)


@pytest.fixture(scope="module")
def without_openlineage(
    tmp_path_factory: pytest.TempPathFactory, pg_tables: list[str], vexora_airflow_db: str
) -> DagRun:
    return run_dag(tmp_path_factory.mktemp("lineage") / "without", pg_tables, openlineage=False)


def names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def fields(dataset: dict[str, Any]) -> list[str]:
    return [f["name"] for f in dataset["facets"]["schema"]["fields"]]


def row_count(dataset: dict[str, Any]) -> int:
    return int(dataset["outputFacets"]["outputStatistics"]["rowCount"])


def payouts(run: DagRun) -> tuple[str, str]:
    return (f"vexora://{run.merchant_no}", "payouts")


class TestWithOpenLineage:
    def test_every_task_succeeds_and_lineage_never_fails(self, with_openlineage: DagRun) -> None:
        run = with_openlineage
        assert set(run.states.values()) == {"success"}, run.output[-3000:]
        assert "OpenLineage method failed" not in run.output
        assert "Failed to extract" not in run.output

    def test_sqlite_sync_start_names_the_payouts_and_the_file_tables(self, with_openlineage: DagRun) -> None:
        run = with_openlineage
        start = run.event("sync_sqlite", "START")
        path = str(run.sqlite_file.resolve())
        assert names(start["inputs"]) == [payouts(run)]
        assert names(start["outputs"]) == [
            ("file", f"{path}/vexora_payout_status"),
            ("file", f"{path}/vexora_payout_status_errors"),
        ]
        status, errors = start["outputs"]
        assert fields(status) == list(STATUS_COLUMNS)
        assert fields(errors) == list(ERROR_COLUMNS)
        assert "outputStatistics" not in status["outputFacets"]  # nothing written yet

    def test_sqlite_sync_complete_counts_rows_and_lists_the_failed_trade(
        self, with_openlineage: DagRun
    ) -> None:
        run = with_openlineage
        complete = run.event("sync_sqlite", "COMPLETE")
        summary = run.summaries["sync_sqlite"]
        status, errors = complete["outputs"]
        assert (row_count(status), row_count(errors)) == (summary["loaded"], summary["failed"]) == (4, 1)
        assert len(run.sqlite_rows("vexora_payout_status")) == 4
        facets = complete["run"]["facets"]
        assert facets["extractionError"]["totalTasks"] == 5
        assert facets["extractionError"]["failedTasks"] == 1
        (error,) = facets["extractionError"]["errors"]
        assert error["task"] == BAD_TRADE
        assert error["errorMessage"].startswith("VexoraInvalidTradeNoError: ")
        sync = facets["vexoraSync"]
        assert sync["counts"]["loaded"] == 4
        assert sync["byState"] == {"success": 1, "partial": 1, "failed": 1, "pending": 1}
        assert sync["merchantNo"] == run.merchant_no

    def test_column_lineage_comes_from_the_vexora_fields(self, with_openlineage: DagRun) -> None:
        run = with_openlineage
        status = run.event("sync_sqlite", "COMPLETE")["outputs"][0]
        lineage = status["facets"]["columnLineage"]["fields"]
        amount = lineage["amount"]["inputFields"]
        assert [(f["namespace"], f["name"], f["field"]) for f in amount] == [(*payouts(run), "amount")]
        assert amount[0]["transformations"][0]["subtype"] == "IDENTITY"
        assert [f["field"] for f in lineage["state"]["inputFields"]] == ["status"]

    def test_postgres_sync_uses_the_postgres_provider_naming(
        self, with_openlineage: DagRun, postgres_dsn: str
    ) -> None:
        run = with_openlineage
        dsn = urlsplit(postgres_dsn)
        namespace = f"postgres://{dsn.hostname}:{dsn.port or 5432}"
        database = dsn.path.lstrip("/")
        complete = run.event("sync_postgres", "COMPLETE")
        assert names(complete["outputs"]) == [
            (namespace, f"{database}.public.{run.pg_table}"),
            (namespace, f"{database}.public.{run.pg_table}_errors"),
        ]
        status, errors = complete["outputs"]
        assert [f["type"] for f in status["facets"]["schema"]["fields"]][6:9] == ["NUMERIC"] * 3
        summary = run.summaries["sync_postgres"]
        assert (row_count(status), row_count(errors)) == (summary["loaded"], summary["failed"]) == (4, 1)
        assert len(run.pg_rows()) == 4
        # trade_nos_sql reads a table: an input as the SQL parser names it
        assert names(complete["inputs"]) == [payouts(run), (namespace, f"{database}.public.{run.pg_batches}")]
        assert "SELECT trade_no FROM" in complete["job"]["facets"]["sql"]["query"]
        assert complete["run"]["facets"]["extractionError"]["errors"][0]["task"] == BAD_TRADE

    @pytest.mark.parametrize("task_id", ["wait_poke", "wait_deferred"])
    def test_sensor_reads_the_payouts_in_both_modes(self, with_openlineage: DagRun, task_id: str) -> None:
        run = with_openlineage
        for kind in ("START", "COMPLETE"):
            event = run.event(task_id, kind)
            assert (names(event["inputs"]), event["outputs"]) == ([payouts(run)], [])

    def test_create_writes_the_payouts(self, with_openlineage: DagRun) -> None:
        run = with_openlineage
        (output,) = run.event("create", "COMPLETE")["outputs"]
        assert ((output["namespace"], output["name"]), row_count(output)) == (payouts(run), 1)

    def test_a_task_using_the_hook_reports_hook_lineage(self, with_openlineage: DagRun) -> None:
        run = with_openlineage
        assert names(run.event("query_with_hook", "COMPLETE")["inputs"]) == [payouts(run)]

    def test_the_app_secret_is_in_no_event(self, with_openlineage: DagRun) -> None:
        run = with_openlineage
        assert run.events
        leaked = run.secret in json.dumps(run.events)  # never ``assert secret not in``: it prints it
        assert not leaked, "the app secret is in an OpenLineage event"


class TestWithoutOpenLineage:
    def test_the_same_dag_runs_unchanged(self, with_openlineage: DagRun, without_openlineage: DagRun) -> None:
        before, after = with_openlineage, without_openlineage
        assert after.states == before.states
        assert after.events == []
        assert (before.lineage_methods, after.lineage_methods) == ([True, True], [False, False])
        assert after.sqlite_rows("vexora_payout_status") == before.sqlite_rows("vexora_payout_status")
        assert after.pg_rows() == before.pg_rows()
        for task_id, summary in after.summaries.items():
            expected = before.summaries[task_id]
            assert {**summary, "duration_s": 0, "table": 0, "errors_table": 0} == {
                **expected,
                "duration_s": 0,
                "table": 0,
                "errors_table": 0,
            }

    def test_lineage_sends_the_gateway_nothing(
        self, with_openlineage: DagRun, without_openlineage: DagRun
    ) -> None:
        assert with_openlineage.requests == without_openlineage.requests
        per_trade = with_openlineage.requests["trades"]
        # LIN-1: two syncs, the poking sensor, the hook task; LIN-D: one poke, two trigger polls
        assert per_trade["LIN-1"] == {"queryPayOutResult": 4}
        assert per_trade["LIN-D"] == {"queryPayOutResult": 3}


class TestWarehouseNaming:
    """Each real warehouse's tables, named as its Airflow SQL provider names them."""

    def test_start_names_the_tables_and_what_the_query_reads(
        self, warehouse: Warehouse, vexora_airflow_conn: str, request: pytest.FixtureRequest
    ) -> None:
        namespace, name = expected_naming(warehouse, request)
        # A schema-qualified table too, where the database has schemas (SQLite has attached files).
        for table in ["vx_named"] if warehouse.dialect == "sqlite" else ["vx_named", "ops.vx_named"]:
            op = PayoutStatusToSqlOperator(
                task_id="sync",
                sql_conn_id=warehouse.conn_id,
                table=table,
                trade_nos_sql="SELECT trade_no FROM batches",
            )
            lineage = op.get_openlineage_facets_on_start()
            assert lineage is not None
            schema, _, bare = table.rpartition(".")
            assert [(d.namespace, d.name) for d in lineage.outputs] == [
                (namespace, name(schema, bare)),
                (namespace, name(schema, f"{bare}_errors")),
            ]
            assert (lineage.inputs[1].namespace, lineage.inputs[1].name) == (namespace, name("", "batches"))


def expected_naming(
    warehouse: Warehouse, request: pytest.FixtureRequest
) -> tuple[str, Callable[[str, str], str]]:
    """The namespace, and the name of ``[schema.]table``, the way the docs say."""
    if warehouse.dialect == "sqlite":
        conn = json.loads(os.environ[f"AIRFLOW_CONN_{warehouse.conn_id.upper()}"])
        return "file", lambda _schema, table: f"{Path(conn['host']).resolve()}/{table}"
    dsn = urlsplit(
        request.getfixturevalue(f"{'postgres' if warehouse.dialect == 'postgres' else 'mysql'}_dsn")
    )
    database = dsn.path.lstrip("/")
    if warehouse.dialect == "postgres":
        return f"postgres://{dsn.hostname}:{dsn.port or 5432}", (
            lambda schema, table: f"{database}.{schema or 'public'}.{table}"
        )
    return f"mysql://{dsn.hostname}:{dsn.port or 3306}", lambda schema, table: f"{schema or database}.{table}"
