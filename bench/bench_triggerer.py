"""Many deferred sensors on one real triggerer: CPU, memory, requests per poll round, settle → done.

A real Airflow (scheduler with the LocalExecutor, dag-processor, API server, one triggerer) on a
fresh PostgreSQL metadata database, and ``vexora-simulator serve`` with a fixed latency. Two DAGs
each map a deferrable ``PayoutStatusSensor`` over ``--tasks`` lists of ``--per-task`` payouts
that stay pending until the benchmark settles them:

- ``pool_per_trigger`` (the naive baseline): every trigger opens its own connection pool
  (``bench/pool_per_trigger.py``: the stock sensor, deferring to a trigger with ``share_pool``
  off) -- what the provider did before triggers shared pools;
- ``shared_pool``: the stock sensor; the triggers of the triggerer share one pool per connection.

For each, in the same run: every task pokes once on a worker and defers; once all are deferred
and one poll interval has passed, a steady window of ``--rounds`` poll rounds measures the
triggerer's CPU (all processes of its process group), its peak RSS, requests per poll round (the
ideal is one per pending payout) and TCP connections opened (the simulator counts accepts). Then
the payouts settle in ``--waves`` waves, one every ``--wave-gap`` seconds; for each task the time
from its last payout settling to the trigger firing (the task leaving ``deferred``, sampled every
0.5 s) and to the task finishing (its ``end_date``: ``execute_complete`` ran on a worker).

    .venv/bin/python bench/bench_triggerer.py                       # 500 tasks x 10 payouts, poll 30 s
    .venv/bin/python bench/bench_triggerer.py --tasks 40 --poll 10  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.airflow_support import (  # noqa: E402
    Components,
    deployment_env,
    postgres_databases,
    simulator_process,
)

MODES = ("pool_per_trigger", "shared_pool")
DAG_FILE = """
import json, os
import pendulum
from airflow.sdk import DAG
from pool_per_trigger import PoolPerTriggerSensor
from vexora_provider.sensors.payout_status import PayoutStatusSensor

BATCHES = json.loads(open(os.environ["VEXORA_BENCH_BATCHES"]).read())
SENSORS = {"pool_per_trigger": PoolPerTriggerSensor, "shared_pool": PayoutStatusSensor}
for mode, sensor in SENSORS.items():
    with DAG(
        f"bench_{mode}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        max_active_tasks=100_000,
    ):
        sensor.partial(
            task_id="wait", deferrable=True, poke_interval=float(os.environ["VEXORA_BENCH_POLL"]),
            timeout=6 * 3600,
        ).expand(trade_nos=BATCHES[mode])
"""


class Triggerer:
    """The triggerer's process group, measured with psutil."""

    def __init__(self, components: Components) -> None:
        process = components.processes["triggerer"].process
        assert process is not None
        self.group = process.pid
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def processes(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) == self.group:
                    found.append(process)
            except (ProcessLookupError, psutil.Error):
                continue
        return found

    def cpu(self) -> float:
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total

    def rss(self) -> int:
        total = 0
        for process in self.processes():
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total

    def connections_to(self, port: int) -> int:
        count = 0
        for process in self.processes():
            try:
                count += sum(1 for c in process.net_connections("tcp") if c.raddr and c.raddr.port == port)
            except psutil.Error:
                continue
        return count

    def watch_rss(self) -> None:
        self.peak_rss = 0
        self._stop.clear()

        def sample() -> None:
            while not self._stop.wait(0.5):
                self.peak_rss = max(self.peak_rss, self.rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop_watching(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.peak_rss


def states(meta: str, dag_id: str) -> dict[int, tuple[str | None, Any]]:
    with psycopg.connect(meta) as conn:
        rows = conn.execute(
            "select map_index, state, end_date from task_instance where dag_id = %s", (dag_id,)
        ).fetchall()
    return {int(i): (s, end) for i, s, end in rows}


def wait_for(what: str, check: Any, timeout: float, components: Components) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        components.check_running()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}\n{components.tail(20)}")
        time.sleep(1)


def run_mode(
    mode: str,
    args: argparse.Namespace,
    components: Components,
    meta: str,
    sim: dict[str, Any],
    batches: list[list[str]],
    triggerer: Triggerer,
) -> dict[str, Any]:
    dag_id = f"bench_{mode}"
    admin = sim["admin_url"]
    client = httpx.Client(timeout=30)
    started = time.time()
    components.airflow("dags", "trigger", dag_id)

    def count(state: str) -> int:
        return sum(1 for s, _ in states(meta, dag_id).values() if s == state)

    def all_deferred() -> bool:
        found = states(meta, dag_id)
        bad = [i for i, (s, _) in found.items() if s in ("failed", "up_for_retry", "upstream_failed")]
        if bad:
            raise RuntimeError(f"{mode}: tasks {bad[:5]} failed\n{components.tail(20)}")
        return count("deferred") == args.tasks

    wait_for(f"{mode}: all tasks deferred", all_deferred, args.timeout, components)
    defer_phase = time.time() - started
    time.sleep(args.poll)  # every trigger is polling at its own pace now

    before = client.get(f"{admin}stats").json()
    cpu0, wall0 = triggerer.cpu(), time.monotonic()
    triggerer.watch_rss()
    time.sleep(args.rounds * args.poll)
    held = triggerer.connections_to(int(sim["url"].rsplit(":", 1)[1]))
    cpu1, wall1 = triggerer.cpu(), time.monotonic()
    peak_rss = triggerer.stop_watching()
    after = client.get(f"{admin}stats").json()
    rounds = (wall1 - wall0) / args.poll

    # Settle in waves; note when each task's last payout settled and when it left `deferred`.
    settled: dict[int, float] = {}
    fired: dict[int, float] = {}
    stop = threading.Event()

    def watch_fired() -> None:
        while not stop.is_set():
            now = time.time()
            for index, (state, _) in states(meta, dag_id).items():
                if index in settled and index not in fired and state != "deferred":
                    fired[index] = now
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_fired, daemon=True)
    watcher.start()
    per_wave = -(-args.tasks // args.waves)
    for wave in range(args.waves):
        for index in range(wave * per_wave, min((wave + 1) * per_wave, args.tasks)):
            for trade_no in batches[index]:
                client.post(
                    f"{admin}payouts", json={"trade_no": trade_no, "final": "success"}
                ).raise_for_status()
            settled[index] = time.time()
        time.sleep(args.wave_gap)

    def all_done() -> bool:
        return count("success") == args.tasks

    wait_for(f"{mode}: all tasks finished", all_done, args.timeout, components)
    stop.set()
    watcher.join()
    ends = {i: end.timestamp() for i, (_, end) in states(meta, dag_id).items()}
    to_fire = sorted(fired[i] - settled[i] for i in fired)
    to_finish = sorted(ends[i] - settled[i] for i in settled)
    pending = args.tasks * args.per_task
    return {
        "mode": mode,
        "tasks": args.tasks,
        "payouts": pending,
        "poll_s": args.poll,
        "defer_phase_s": round(defer_phase, 1),
        "cpu_s_per_round": round((cpu1 - cpu0) / rounds, 2),
        "cpu_share": round((cpu1 - cpu0) / (wall1 - wall0), 3),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "requests_per_round": round((after["total"] - before["total"]) / rounds, 1),
        "ideal_per_round": pending,
        "connections_opened_per_round": round((after["connections"] - before["connections"]) / rounds, 1),
        "connections_held": held,
        "settle_to_fired_p50_s": round(statistics.median(to_fire), 1) if to_fire else None,
        "settle_to_fired_p90_s": round(to_fire[int(0.9 * (len(to_fire) - 1))], 1) if to_fire else None,
        "settle_to_done_p50_s": round(statistics.median(to_finish), 1),
        "settle_to_done_p90_s": round(to_finish[int(0.9 * (len(to_finish) - 1))], 1),
        "settle_to_done_max_s": round(to_finish[-1], 1),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=500, help="deferred sensor tasks per mode (default 500)")
    parser.add_argument("--per-task", type=int, default=10, help="payouts each task watches (default 10)")
    parser.add_argument("--poll", type=float, default=30.0, help="poke_interval in seconds (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="poll rounds in the steady window (default 3)")
    parser.add_argument("--waves", type=int, default=10, help="settlement waves (default 10)")
    parser.add_argument("--wave-gap", type=float, default=6.0, help="seconds between waves (default 6)")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="simulator latency per call (default 20)"
    )
    parser.add_argument("--parallelism", type=int, default=8, help="LocalExecutor slots (default 8)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per phase")
    parser.add_argument(
        "--modes", default=",".join(MODES), help="order of the modes (default: baseline first)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("VEXORA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    modes = args.modes.split(",")

    with (
        tempfile.TemporaryDirectory(prefix="vexora-bench-triggerer-") as tmp,
        simulator_process(
            Path(tmp), "--seed", "21", "--latency-ms", str(args.latency_ms), "--region", "indonesia"
        ) as sim,
        postgres_databases(args.postgres, "meta") as (meta,),
    ):
        home = Path(tmp) / "airflow"
        dags = home / "dags"
        dags.mkdir(parents=True)
        client = httpx.Client(timeout=60)
        batches: dict[str, list[list[str]]] = {}
        for mode in modes:
            made = client.post(
                f"{sim['admin_url']}payouts",
                json={
                    "n": args.tasks * args.per_task,
                    "mix": {"pending": 1},
                    "prefix": f"{mode[:4].upper()}-",
                },
            ).json()["tradeNos"]
            batches[mode] = [made[i : i + args.per_task] for i in range(0, len(made), args.per_task)]
        (home / "batches.json").write_text(json.dumps(batches))
        (dags / "bench_triggerer_dags.py").write_text(DAG_FILE)
        env = deployment_env(
            home=home,
            dags=dags,
            metadata_dsn=meta,
            connections={"vexora_default": sim["airflow_env"]["AIRFLOW_CONN_VEXORA_DEFAULT"]},
        )
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "bench"), env.get("PYTHONPATH")])),
                "VEXORA_BENCH_BATCHES": str(home / "batches.json"),
                "VEXORA_BENCH_POLL": str(args.poll),
                "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "100000",
            }
        )
        components = Components(home, env)
        try:
            components.airflow("db", "migrate")
            for name in ("scheduler", "dag-processor", "api-server", "triggerer"):
                components.start(name, name)
            triggerer = Triggerer(components)

            def parsed() -> bool:
                with psycopg.connect(meta) as conn:
                    return len(conn.execute("select dag_id from dag").fetchall()) >= len(MODES)

            wait_for("the DAGs parsed", parsed, 300, components)
            time.sleep(10)
            idle = {"triggerer_idle_rss_mb": round(triggerer.rss() / 2**20, 1)}
            print(json.dumps(idle), flush=True)
            results = []
            for mode in modes:
                result = run_mode(mode, args, components, meta, sim, batches[mode], triggerer)
                print(json.dumps(result), flush=True)
                results.append(result)
        finally:
            components.stop_all()
    header = (
        "mode",
        "CPU s / round",
        "CPU share",
        "peak RSS MB",
        "requests / round (ideal)",
        "conns opened / round",
        "conns held",
        "settle→fired p50/p90 s",
        "settle→done p50/p90/max s",
        "load",
    )
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in results:
        cells = (
            r["mode"],
            r["cpu_s_per_round"],
            r["cpu_share"],
            r["peak_rss_mb"],
            f"{r['requests_per_round']} ({r['ideal_per_round']})",
            r["connections_opened_per_round"],
            r["connections_held"],
            f"{r['settle_to_fired_p50_s']}/{r['settle_to_fired_p90_s']}",
            f"{r['settle_to_done_p50_s']}/{r['settle_to_done_p90_s']}/{r['settle_to_done_max_s']}",
            r["load_1m"],
        )
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
