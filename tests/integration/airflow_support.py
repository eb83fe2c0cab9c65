"""Real Airflow processes for tests and benchmarks: ``airflow standalone``, ``airflow api-server``,
and deployments of separate components (scheduler, dag-processor, API server, triggerer, Celery
workers).

Each runs in an isolated ``AIRFLOW_HOME`` on free loopback ports, in its own process group, and is
stopped group-wide. The metadata database is SQLite in that home, a PostgreSQL schema (through
``search_path``) on a server the caller names, or PostgreSQL databases made for the run. A Celery
deployment uses PostgreSQL as metadata database and result backend and Redis as broker, with a
queue of its own so concurrent runs never take each other's tasks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest

AIRFLOW = Path(sys.executable).parent / "airflow"
JWT_SECRET = "vexora-test-jwt-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def group_alive(group: int) -> bool:
    """Whether a process of the group is still running."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    # Zombies still answer signal 0: only count members that are really running.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group led by ``process``, SIGKILL what is left; reap the leader."""
    group = process.pid
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(group):
            process.poll()  # reap the leader so it does not count as alive
            time.sleep(0.2)
        if not group_alive(group):
            break
    process.wait(10)


def postgres_url(dsn: str, schema: str) -> str:
    """SQLAlchemy URL of ``dsn`` with every unqualified name resolved in ``schema``."""
    base = dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    return f"{base}?options={quote(f'-csearch_path={schema}')}"


def consumer_dag(dag_id: str, merchant_no: str) -> str:
    """The source of a DAG scheduled on a merchant's payouts asset, with one no-op task."""
    return f"""
import pendulum
from airflow.sdk import DAG, task

from vexora_provider.assets import payouts_asset

with DAG("{dag_id}", schedule=[payouts_asset("{merchant_no}")],
         start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):

    @task
    def book(): ...

    book()
"""


def airflow_env(home: Path, dags: Path, api_port: int, **extra: str) -> dict[str, str]:
    """The environment of every Airflow process of one isolated deployment."""
    env = {
        **os.environ,
        "PATH": f"{AIRFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # The default 5 s fails task starts when the 2 cores are busy with other jobs.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        **extra,
    }
    env.pop("AIRFLOW_CONFIG", None)
    return env


def airflow_cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``airflow <args>`` and return its output; fail with the output's tail."""
    done = subprocess.run([str(AIRFLOW), *args], env=env, capture_output=True, timeout=timeout, check=False)
    output = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} exited {done.returncode}:\n{output[-3000:]}")
    return output


class AirflowProcess:
    """
    One long-running Airflow command in its own process group, output to a file.

    :param env: the environment (see :func:`airflow_env`).
    :param args: the ``airflow`` subcommand and options.
    :param output: where stdout and stderr go.
    """

    def __init__(self, env: dict[str, str], args: Sequence[str], output: Path) -> None:
        self.env = env
        self.args = list(args)
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [str(AIRFLOW), *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: components fork workers
            )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        """Stop every process of the group: components can outlive their parent after SIGTERM."""
        if self.process is not None:
            stop_group(self.process)

    def wait_until(self, done: Callable[[], object], *, timeout: float, describe: Callable[[], str]) -> None:
        """Check ``done`` every half second until it is true; fail the test if the process exits or
        ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited():
                pytest.fail(f"airflow {self.args[0]} exited early:\n{self.tail()}")
            if done():
                return
            time.sleep(0.5)
        pytest.fail(f"not done in {timeout:.0f}s: {describe()}\n{self.tail()}")

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else "(no output)"

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


class Standalone(AirflowProcess):
    """
    ``airflow standalone`` (API server, scheduler, triggerer, dag-processor) and its SQLite database.

    :param home: the isolated ``AIRFLOW_HOME``.
    :param env: the environment of every Airflow process.
    """

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        super().__init__(env, ["standalone"], home / "standalone.out")
        self.home = home

    def migrate(self) -> None:
        # airflow.cfg and the metadata DB must exist before standalone forks its components.
        airflow_cli(self.env, "db", "migrate")

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        db = self.home / "airflow.db"
        if not db.exists():
            return []
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []  # locked or not migrated yet: ask again on the next round

    def task_states(self) -> dict[tuple[str, str], str | None]:
        rows = self.query("select dag_id, task_id, state from task_instance")
        return {(str(d), str(t)): (None if s is None else str(s)) for d, t, s in rows}


class ApiServer(AirflowProcess):
    """
    ``airflow api-server`` on a free loopback port.

    :param env: the environment (its ``AIRFLOW__API__PORT`` is the port).
    :param output: where its output goes.
    :param workers: uvicorn worker processes.
    """

    def __init__(self, env: dict[str, str], output: Path, *, workers: int = 1) -> None:
        self.port = int(env["AIRFLOW__API__PORT"])
        super().__init__(env, ["api-server", "--port", str(self.port), "--workers", str(workers)], output)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited():
                raise RuntimeError(f"airflow api-server exited:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"airflow api-server not ready in {timeout:.0f}s:\n{self.tail()}")


class Components:
    """
    The components of one deployment, each an :class:`AirflowProcess` named after its role.

    :param home: the ``AIRFLOW_HOME`` (outputs go to ``<home>/<name>.out``).
    :param env: the environment of every component.
    """

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.processes: dict[str, AirflowProcess] = {}

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run one ``airflow`` command to its end; return its output, fail with it."""
        return airflow_cli(self.env, *args, timeout=timeout)

    def start(self, name: str, *args: str) -> AirflowProcess:
        """Start ``airflow <args>`` as component ``name``."""
        process = self.processes[name] = AirflowProcess(self.env, args, self.home / f"{name}.out")
        process.start()
        return process

    def tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name} ---\n{p.tail(lines)}" for name, p in self.processes.items())

    def check_running(self) -> None:
        """Fail, with every component's last lines, if one has exited."""
        dead = [name for name, process in self.processes.items() if process.exited()]
        assert not dead, f"{dead} exited early:\n{self.tail()}"

    def wait_for_output(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.processes[name].text():
            self.check_running()
            assert time.monotonic() < deadline, f"{name} never printed {text!r}:\n{self.tail()}"
            time.sleep(0.5)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            process.stop()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


@contextmanager
def postgres_databases(server_dsn: str, *suffixes: str) -> Iterator[list[str]]:
    """Create uniquely named databases on the server of ``server_dsn``; yield their DSNs; drop them."""
    import psycopg

    parts = urlsplit(server_dsn)
    name = f"vexora_{uuid.uuid4().hex[:10]}"
    names = [f"{name}_{suffix}" for suffix in suffixes]
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        for db in names:
            conn.execute(f'CREATE DATABASE "{db}"')
    try:
        yield [urlunsplit(parts._replace(path=f"/{db}")) for db in names]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for db in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def deployment_env(
    *, home: Path, dags: Path, metadata_dsn: str, connections: dict[str, str], executor: str = "LocalExecutor"
) -> dict[str, str]:
    """The environment of a deployment of separate components on a PostgreSQL metadata database."""
    return airflow_env(
        home,
        dags,
        free_port(),
        AIRFLOW__CORE__EXECUTOR=executor,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=_sqlalchemy(metadata_dsn),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT="1200",
        **{f"AIRFLOW_CONN_{conn_id.upper()}": value for conn_id, value in connections.items()},
    )


def create_status_tables(warehouse_dsn: str) -> None:
    """
    Create the sync operator's status tables with its own DDL, so a benchmark can empty them
    between measured runs.
    """
    from unittest import mock

    from tests.integration.operator_support import db_hook, dsn_connection
    from vexora_provider.operators.payout_status import DEFAULT_TABLE
    from vexora_provider.warehouse import TableName, writer_for

    conn = dsn_connection(warehouse_dsn, "postgres")
    with mock.patch.dict(os.environ, {"AIRFLOW_CONN_VEXORA_STATUS_TABLES": conn}):
        writer = writer_for(db_hook("vexora_status_tables"), TableName.parse(DEFAULT_TABLE))
        try:
            writer.create_tables()
        finally:
            writer.close()


def _sqlalchemy(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg2://", 1)


def celery_env(
    *, home: Path, dags: Path, metadata_dsn: str, broker_url: str, connections: dict[str, str]
) -> dict[str, str]:
    """The environment of a CeleryExecutor deployment in ``home`` (a queue of its own)."""
    env = deployment_env(
        home=home, dags=dags, metadata_dsn=metadata_dsn, connections=connections, executor="CeleryExecutor"
    )
    env.update(
        {
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{_sqlalchemy(metadata_dsn)}",
            # The result rows then name the worker (its Celery hostname) that ran each task.
            "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps({"result_extended": True}),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"vexora-{uuid.uuid4().hex[:8]}",
        }
    )
    return env


@contextmanager
def simulator_process(info_dir: Path, *args: str) -> Iterator[dict[str, Any]]:
    """``vexora-simulator serve <args>`` in its own process group; yield its info (URLs, credentials)."""
    info_file = info_dir / "simulator.json"
    command = [str(AIRFLOW.parent / "vexora-simulator"), "serve", "--info-file", str(info_file), *args]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not info_file.exists():
            if process.poll() is not None:
                raise RuntimeError(
                    f"the simulator exited: {process.stderr.read().decode() if process.stderr else ''}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.1)
        yield json.loads(info_file.read_text())
    finally:
        stop_group(process)


def start_celery_workers(components: Components, names: list[str], concurrency: int) -> None:
    """Start one ``airflow celery worker`` per name (its Celery hostname); return once all are ready."""
    for name in names:
        # Logs are files in the shared home: no log server (they would fight over its port).
        components.start(
            name,
            "celery",
            "worker",
            "--celery-hostname",
            f"{name}@%h",
            "--concurrency",
            str(concurrency),
            "--skip-serve-logs",
        )
    for name in names:
        components.wait_for_output(name, "ready.", timeout=180)
