"""Real Airflow processes for tests and benchmarks: ``airflow standalone`` and ``airflow api-server``.

Each runs in an isolated ``AIRFLOW_HOME`` on free loopback ports, in its own process group, and is
stopped group-wide. The metadata database is SQLite in that home, or a PostgreSQL schema (through
``search_path``) on a server the caller names.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import httpx

AIRFLOW = Path(sys.executable).parent / "airflow"
JWT_SECRET = "vexora-test-jwt-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        if self.process is None:
            return
        group = self.process.pid
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self._group_alive(group):
                self.process.poll()  # reap the leader so it does not count as alive
                time.sleep(0.2)
            if not self._group_alive(group):
                break
        self.process.wait(10)

    @staticmethod
    def _group_alive(group: int) -> bool:
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
