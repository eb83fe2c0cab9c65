"""The mapped large sync on one vs two Celery workers, alternating in the same run.

A real CeleryExecutor deployment (scheduler, dag-processor, API server, ``airflow celery worker``
processes; PostgreSQL metadata database and result backend; Redis broker) runs
``example_vexora_mapped_sync`` over ``--trades`` payouts of ``vexora-simulator serve`` (fixed
latency per call) into a PostgreSQL warehouse. Runs alternate between one worker and two (each
with ``--worker-concurrency`` task slots; the second worker is started and stopped between runs),
so background load hits both alike; the status table is emptied before each run so every run
does the same work. Reported per run: the DAG run's wall time (first task start to last task end),
trades per second, and which workers ran the batches; then medians and the two-worker speed-up.

    .venv/bin/python bench/bench_celery.py                      # 20,000 trades, L = 50 ms, 3 runs each
    .venv/bin/python bench/bench_celery.py --runs 1 --trades 4000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.airflow_support import (  # noqa: E402
    Components,
    celery_env,
    create_status_tables,
    postgres_databases,
    simulator_process,
    start_celery_workers,
)
from tests.integration.operator_support import dsn_connection  # noqa: E402
from vexora_provider.operators.payout_status import DEFAULT_TABLE  # noqa: E402

DAG_ID = "example_vexora_mapped_sync"


def fill_warehouse(dsn: str, trades: int) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("create table payouts (trade_no varchar(32) primary key, region varchar(32))")
        with conn.cursor().copy("copy payouts (trade_no) from stdin") as copy:
            for i in range(trades):
                copy.write_row((f"SIM{i:08d}",))
    create_status_tables(dsn)


def one_run(components: Components, meta: str, warehouse: str, trades: int, number: int) -> dict[str, Any]:
    with psycopg.connect(warehouse) as conn:
        conn.execute(f"truncate {DEFAULT_TABLE}, {DEFAULT_TABLE}_errors")
    if number == 0:
        components.airflow("dags", "unpause", DAG_ID)  # its scheduled run starts now
    else:
        components.airflow("dags", "trigger", DAG_ID)
    deadline = time.monotonic() + 1800
    while True:
        components.check_running()
        with psycopg.connect(meta) as conn:
            runs = conn.execute(
                "select run_id, state from dag_run where dag_id = %s order by id", (DAG_ID,)
            ).fetchall()
        if len(runs) > number and runs[number][1] in ("success", "failed"):
            run_id, state = runs[number]
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {number} did not finish\n{components.tail(20)}")
        time.sleep(1)
    with psycopg.connect(meta) as conn:
        start, end = conn.execute(
            "select min(start_date), max(end_date) from task_instance where dag_id = %s and run_id = %s",
            (DAG_ID, run_id),
        ).fetchone() or (None, None)
        workers = conn.execute(
            "select m.worker, count(*) from task_instance ti join celery_taskmeta m "
            "on m.task_id = ti.external_executor_id where ti.dag_id = %s and ti.run_id = %s "
            "and ti.task_id = 'refresh_batch' group by m.worker",
            (DAG_ID, run_id),
        ).fetchall()
    with psycopg.connect(warehouse) as conn:
        (rows,) = conn.execute(f"select count(*) from {DEFAULT_TABLE}").fetchone() or (0,)
    wall = (end - start).total_seconds()
    return {
        "run": number,
        "state": state,
        "rows": rows,
        "wall_s": round(wall, 1),
        "trades_per_s": round(trades / wall, 1),
        "batches_by_worker": {str(w).split("@")[0]: n for w, n in workers},
        "load_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trades", type=int, default=20_000, help="payouts to sync (default 20,000)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulator latency (default 50)")
    parser.add_argument("--runs", type=int, default=3, help="runs per worker count (default 3)")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="task slots per worker (default 2)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("VEXORA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument(
        "--broker", default=os.environ.get("VEXORA_TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    )
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="vexora-bench-celery-") as tmp,
        simulator_process(
            Path(tmp),
            *("--seed", "22", "--payouts", str(args.trades), "--mix", "success=0.8,partial=0.1,failed=0.1"),
            *("--latency-ms", str(args.latency_ms), "--region", "indonesia"),
        ) as sim,
        postgres_databases(args.postgres, "meta", "warehouse") as (meta, warehouse),
    ):
        fill_warehouse(warehouse, args.trades)
        home = Path(tmp) / "airflow"
        dags = home / "dags"
        dags.mkdir(parents=True)
        shutil.copy(ROOT / "example_dags" / f"{DAG_ID}.py", dags)
        env = celery_env(
            home=home,
            dags=dags,
            metadata_dsn=meta,
            broker_url=args.broker,
            connections={
                "vexora_default": sim["airflow_env"]["AIRFLOW_CONN_VEXORA_DEFAULT"],
                "vexora_warehouse": dsn_connection(warehouse, "postgres"),
            },
        )
        env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
        components = Components(home, env)
        results: list[dict[str, Any]] = []
        try:
            components.airflow("db", "migrate")
            start_celery_workers(components, ["vexora-w1"], args.worker_concurrency)
            for name in ("scheduler", "dag-processor", "api-server"):
                components.start(name, name)
            deadline = time.monotonic() + 300
            while True:
                with psycopg.connect(meta) as conn:
                    if conn.execute("select 1 from dag where dag_id = %s", (DAG_ID,)).fetchall():
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the DAG was never parsed")
                time.sleep(1)
            for number in range(2 * args.runs):
                workers = 1 + number % 2
                if workers == 2:
                    start_celery_workers(components, ["vexora-w2"], args.worker_concurrency)
                result = {"workers": workers, **one_run(components, meta, warehouse, args.trades, number)}
                print(json.dumps(result), flush=True)
                results.append(result)
                if workers == 2:
                    components.stop("vexora-w2")
        finally:
            components.stop_all()
    print("\n| workers | runs | wall s (median, min–max) | trades/s (median) | load (median) |")
    print("|---|---|---|---|---|")
    medians = {}
    for workers in (1, 2):
        mine = [r for r in results if r["workers"] == workers]
        walls = [r["wall_s"] for r in mine]
        medians[workers] = statistics.median(walls)
        print(
            f"| {workers} | {len(mine)} | {medians[workers]} ({min(walls)}–{max(walls)}) | "
            f"{statistics.median(r['trades_per_s'] for r in mine)} | "
            f"{statistics.median(r['load_1m'] for r in mine)} |"
        )
    print(f"\nspeed-up with two workers: {medians[1] / medians[2]:.2f}x")


if __name__ == "__main__":
    main()
