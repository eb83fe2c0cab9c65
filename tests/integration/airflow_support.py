"""Running a real Airflow for end-to-end tests: ``airflow standalone`` in an isolated home.

``airflow standalone`` runs the scheduler (LocalExecutor), the triggerer, the dag-processor and the
API server, on free loopback ports, with SQLite as the metadata database.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

AIRFLOW = Path(sys.executable).parent / "airflow"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Standalone:
    """
    ``airflow standalone`` in its own process group, and read-only views of its home.

    :param home: the isolated ``AIRFLOW_HOME``.
    :param env: the environment of every Airflow process.
    """

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.output = home / "standalone.out"
        self.process: subprocess.Popen[bytes] | None = None

    def migrate(self) -> None:
        # airflow.cfg and the metadata DB must exist before standalone forks its components.
        done = subprocess.run(
            [str(AIRFLOW), "db", "migrate"], env=self.env, capture_output=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]

    def start(self) -> None:
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [str(AIRFLOW), "standalone"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: standalone spawns one per component
            )

    def stop(self) -> None:
        """Stop every process of the group: components can outlive standalone after SIGTERM."""
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

    def wait_until(self, done: Callable[[], bool], *, timeout: float, describe: Callable[[], str]) -> None:
        """Check ``done`` every half second; fail the test if Airflow exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"airflow standalone exited early:\n{self.tail()}")
            if done():
                return
            time.sleep(0.5)
        pytest.fail(f"not done in {timeout:.0f}s: {describe()}\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        text = self.output.read_text(errors="replace") if self.output.exists() else "(no output)"
        return "\n".join(text.splitlines()[-lines:])

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


def standalone_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """The environment of every Airflow process: isolated home and ports, ``dags`` as the DAG folder."""
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
        "AIRFLOW__API_AUTH__JWT_SECRET": "vexora-e2e-jwt-secret-0123456789abcdef",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "False",  # the DAGs ask for deferral themselves
        **extra,
    }
    env.pop("AIRFLOW_CONFIG", None)
    return env
