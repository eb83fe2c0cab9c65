"""Real Airflow components for the end-to-end tests and benchmarks: processes, ports, databases.

Each component is ``airflow <command>`` in its own process group (components fork children that
can outlive their parent), with its output in a file of the Airflow home. The Celery helpers build
the environment of a CeleryExecutor deployment: PostgreSQL as metadata database and result
backend, Redis as broker, a queue of its own so concurrent runs never take each other's tasks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

AIRFLOW = Path(sys.executable).parent / "airflow"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def group_alive(group: int) -> bool:
    """Whether a process of the group is still running (zombies do not count)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def stop_group(process: subprocess.Popen[bytes], term_grace: float = 15.0) -> None:
    """SIGTERM the process group of ``process``, then SIGKILL what is left; reap the leader."""
    group = process.pid
    for sig, grace in ((signal.SIGTERM, term_grace), (signal.SIGKILL, 10.0)):
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


class Components:
    """
    Airflow components of one deployment, each in its own process group.

    :param home: the ``AIRFLOW_HOME`` (outputs go to ``<home>/<name>.out``).
    :param env: the environment of every component.
    """

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run one ``airflow`` command to its end; return its output, fail with it."""
        done = subprocess.run(
            [str(AIRFLOW), *args], env=self.env, capture_output=True, timeout=timeout, check=False
        )
        output = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{output[-3000:]}"
        return output

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start ``airflow <args>`` as component ``name``."""
        with (self.home / f"{name}.out").open("wb") as out:
            self.processes[name] = subprocess.Popen(
                [str(AIRFLOW), *args],
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self, name: str) -> str:
        path = self.home / f"{name}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {name} ---\n" + "\n".join(self.output(name).splitlines()[-lines:])
            for name in self.processes
        )

    def check_running(self) -> None:
        """Fail, with every component's last lines, if one has exited."""
        dead = [name for name, process in self.processes.items() if process.poll() is not None]
        assert not dead, f"{dead} exited early:\n{self.tail()}"

    def wait_for_output(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output(name):
            self.check_running()
            assert time.monotonic() < deadline, f"{name} never printed {text!r}:\n{self.tail()}"
            time.sleep(0.5)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            stop_group(process)

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


def base_env(home: Path, dags: Path) -> dict[str, str]:
    """What every test deployment sets: its own home and DAGs, free loopback ports, no examples."""
    api_port = free_port()
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
        "AIRFLOW__API_AUTH__JWT_SECRET": f"vexora-test-jwt-{uuid.uuid4().hex}",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }
    env.pop("AIRFLOW_CONFIG", None)
    return env


def deployment_env(
    *, home: Path, dags: Path, metadata_dsn: str, connections: dict[str, str], executor: str = "LocalExecutor"
) -> dict[str, str]:
    """The environment of an Airflow deployment in ``home`` on a PostgreSQL metadata database."""
    return {
        **base_env(home, dags),
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _sqlalchemy(metadata_dsn),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1200",
        **{f"AIRFLOW_CONN_{conn_id.upper()}": value for conn_id, value in connections.items()},
    }


def create_status_tables(warehouse_dsn: str) -> None:
    """
    Create the sync operator's status tables with its own DDL, before batches start at once.

    Batches starting together would each run ``CREATE TABLE IF NOT EXISTS``, and PostgreSQL lets
    concurrent ones collide in its catalog (a unique violation on ``pg_type``): a first-run race
    of the operator, not something scale-out tests are about.
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
