"""The main job: the example DAGs on a real Airflow, against the simulator, into SQLite.

``make demo`` runs this with the project's virtualenv. It

1. starts ``vexora-simulator serve`` on a free loopback port with a seeded mix of payouts over
   three regions (one Airflow connection per region, as a real multi-region merchant has);
2. writes the merchant's own ``payouts`` table into a local SQLite warehouse;
3. runs the example DAGs with ``airflow dags test`` (a real Airflow: metadata DB, task runner,
   triggers of the deferrable sensor run inline);
4. prints counts by state next to what the simulator holds, the time taken and the table path.

Everything lives in ``.demo/`` and is recreated on each run; the simulator is stopped on exit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from vexora_provider.models import StatusMap

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".demo"
BIN = Path(sys.executable).parent
WAREHOUSE = WORK / "warehouse.db"
TABLE = "vexora_payout_status"

SEED = 2026
PAYOUTS = 3000
REGIONS = ("nigeria", "indonesia", "argentina")
MIX = {"success": 0.62, "partial": 0.05, "failed": 0.1, "unknown": 0.02, "pending": 0.21}
BATCH_ID = "demo-batch"
STATES = ("success", "partial", "failed", "pending", "unknown")


class Step:
    """Print a step's name, then its duration when it ends."""

    def __init__(self, name: str, timings: dict[str, float]) -> None:
        self.name = name
        self.timings = timings

    def __enter__(self) -> None:
        print(f"→ {self.name} …", flush=True)
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = time.monotonic() - self.started
        if exc[0] is None:
            print(f"  done in {self.timings[self.name]:.1f} s", flush=True)


def admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the simulator's admin API (unsigned, loopback only)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + "/_simulator/" + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def start_simulator() -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start the simulator CLI and wait for the info file it writes once it listens."""
    info_file = WORK / "simulator.json"
    mix = ",".join(f"{k}={v}" for k, v in MIX.items())
    command = [
        str(BIN / "vexora-simulator"), "serve", "--port", "0", "--seed", str(SEED),
        "--payouts", str(PAYOUTS), "--mix", mix, "--regions", ",".join(REGIONS),
        "--latency-ms", "20", "--latency-max-ms", "60", "--info-file", str(info_file),
    ]  # fmt: skip
    log = (WORK / "simulator.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the simulator did not start; see {WORK / 'simulator.log'}")
        time.sleep(0.1)
    return process, json.loads(info_file.read_text())


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process group started by this script, politely then firmly."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def airflow_env(sim: dict[str, Any]) -> dict[str, str]:
    """Environment for the airflow CLI: isolated home, example DAGs, one connection per region."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(WORK / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "VEXORA_EXAMPLE_POKE_INTERVAL": "3",
            "AIRFLOW_CONN_VEXORA_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(WAREHOUSE)}),
        }
    )
    for region in REGIONS:
        env[f"AIRFLOW_CONN_VEXORA_{region.upper()}"] = json.dumps(
            {
                "conn_type": "vexora",
                "host": f"{sim['url']}/{region}",
                "login": sim["merchant_no"],
                "password": sim["secret"],
            }
        )
    return env


def airflow(env: dict[str, str], *args: str) -> None:
    """Run one airflow CLI command; show its output only when it fails."""
    log_path = WORK / "airflow.log"
    with log_path.open("ab") as log:
        log.write(f"\n$ airflow {' '.join(args)}\n".encode())
        log.flush()
        result = subprocess.run(
            [str(BIN / "airflow"), *args], env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-40:]
        raise SystemExit(f"airflow {' '.join(args)} failed:\n" + "\n".join(tail))


def metadata(sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Read Airflow's metadata DB (SQLite under .demo/airflow) to report what really happened."""
    with sqlite3.connect(WORK / "airflow" / "airflow.db") as db:
        return db.execute(sql, params).fetchall()


def dag_test(env: dict[str, str], dag_id: str, conf: dict[str, Any]) -> None:
    """Run one DAG run with ``airflow dags test``; fail loudly unless every task succeeded."""
    airflow(env, "dags", "test", dag_id, "--conf", json.dumps(conf))
    run_id, state = metadata(
        "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", dag_id
    )[0]
    if state != "success":
        tasks = metadata("SELECT task_id, state FROM task_instance WHERE run_id = ?", run_id)
        raise SystemExit(f"{dag_id} ended {state}: {tasks}; see {WORK / 'airflow' / 'logs'}")
    for task_id, map_index, value in metadata(
        "SELECT task_id, map_index, value FROM xcom WHERE run_id = ? AND dag_id = ? AND key = 'return_value'"
        " AND task_id IN ('refresh_payout_statuses', 'refresh_batch') ORDER BY task_id, map_index",
        run_id,
        dag_id,
    ):
        summary = json.loads(value)
        label = task_id if map_index < 0 else f"{task_id}[{map_index}]"
        print(
            f"  {label}: {summary['requested']} fetched, {summary['skipped_terminal']} skipped as final,"
            f" {summary['loaded']} upserted, {summary['failed']} failed, {summary['retries']} retries"
            f" in {summary['duration_s']:.1f} s"
        )
    events = [e for (e,) in metadata(
        "SELECT event FROM log WHERE run_id = ? AND task_id = 'wait_for_payouts' ORDER BY id", run_id
    )]  # fmt: skip
    if events:
        print(f"  wait_for_payouts: {' → '.join(events)}")


def region_conf(region: str) -> dict[str, str]:
    """DAG run conf selecting one region's connection and payouts."""
    return {"vexora_conn_id": f"vexora_{region}", "region": region}


def write_payouts_table(sim_url: str) -> list[str]:
    """Create the merchant's own ``payouts`` table from what was created at the gateway."""
    payouts = admin(sim_url, "payouts")["payouts"]
    batch = admin(
        sim_url,
        "payouts",
        {"n": 12, "mix": {"success": 0.75, "failed": 0.25}, "regions": ["nigeria"],
         "pending_polls": [2, 3], "prefix": "BATCH"},
    )["tradeNos"]  # fmt: skip
    with sqlite3.connect(WAREHOUSE) as db:
        db.execute("CREATE TABLE payouts (trade_no TEXT PRIMARY KEY, region TEXT NOT NULL, batch_id TEXT)")
        db.executemany(
            "INSERT INTO payouts VALUES (?, ?, NULL)", [(p["tradeNo"], p["region"]) for p in payouts]
        )
        db.executemany("INSERT INTO payouts VALUES (?, 'nigeria', ?)", [(t, BATCH_ID) for t in batch])
    return list(batch)


def truth(sim_url: str) -> Counter[str]:
    """The simulator's current payout states, classified by the provider's own status map."""
    status_map = StatusMap.with_overrides()
    return Counter(status_map.classify(p["status"]).value for p in admin(sim_url, "payouts")["payouts"])


def loaded() -> tuple[Counter[str], dict[str, Counter[str]], int]:
    """Counts by state in the warehouse table, overall and per region, and the error rows."""
    with sqlite3.connect(WAREHOUSE) as db:
        by_region: dict[str, Counter[str]] = {}
        for region, state, n in db.execute(
            f"SELECT p.region, s.state, COUNT(*) FROM {TABLE} s JOIN payouts p USING (trade_no)"
            " GROUP BY p.region, s.state"
        ):
            by_region.setdefault(region, Counter())[state] = n
        errors = db.execute(f"SELECT COUNT(*) FROM {TABLE}_errors").fetchone()[0]
    total: Counter[str] = Counter()
    for counts in by_region.values():
        total.update(counts)
    return total, by_region, errors


def report(
    expected: Counter[str], total: Counter[str], by_region: dict[str, Counter[str]], errors: int
) -> bool:
    """Print the summary table; return whether the warehouse matches the simulator."""
    print("\nPayout statuses in the warehouse vs. the simulator")
    header = f"  {'state':<9}" + "".join(f"{r:>11}" for r in REGIONS) + f"{'table':>9}{'simulator':>11}"
    print(header)
    for state in STATES:
        cells = "".join(f"{by_region.get(r, Counter())[state]:>11}" for r in REGIONS)
        mark = "" if total[state] == expected[state] else "   ← differs"
        print(f"  {state:<9}{cells}{total[state]:>9}{expected[state]:>11}{mark}")
    padding = " " * 11 * len(REGIONS)
    print(f"  {'total':<9}{padding}{sum(total.values()):>9}{sum(expected.values()):>11}")
    print(f"  query failures recorded in {TABLE}_errors: {errors}")
    return total == expected and errors == 0


def main() -> int:
    timings: dict[str, float] = {}
    started = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    with Step("start the simulator", timings):
        simulator, sim = start_simulator()
    try:
        print(f"  {sim['url']}  seed {SEED}, {PAYOUTS} payouts over {', '.join(REGIONS)}")
        env = airflow_env(sim)
        with Step("create the Airflow metadata DB", timings):
            airflow(env, "db", "migrate")
        with Step("write the merchant's payouts table", timings):
            batch = write_payouts_table(sim["url"])
        for region in REGIONS[:2]:
            with Step(f"example_vexora_warehouse_sync for {region}", timings):
                dag_test(env, "example_vexora_warehouse_sync", region_conf(region))
        last = REGIONS[2]
        with Step(f"example_vexora_mapped_sync for {last} (batches of 400)", timings):
            dag_test(env, "example_vexora_mapped_sync", {**region_conf(last), "batch_size": 400})
        with Step(f"example_vexora_sensor_gated: deferrable sensor on {len(batch)} payouts", timings):
            dag_test(
                env, "example_vexora_sensor_gated", {"vexora_conn_id": "vexora_nigeria", "batch_id": BATCH_ID}
            )
        with Step("second sync of every region (rerun-safe, only non-final payouts)", timings):
            for region in REGIONS:
                dag_test(env, "example_vexora_warehouse_sync", region_conf(region))
        expected = truth(sim["url"])
    finally:
        stop(simulator)
    total, by_region, errors = loaded()
    ok = report(expected, total, by_region, errors)
    print(f"\nWarehouse: {WAREHOUSE} (tables payouts, {TABLE}, {TABLE}_errors)")
    print(f"Airflow home and logs: {WORK / 'airflow'}   CLI output: {WORK / 'airflow.log'}")
    print(f"Total time: {time.monotonic() - started:.0f} s")
    print(
        "The warehouse matches the simulator."
        if ok
        else "MISMATCH: the warehouse differs from the simulator."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
