"""End-to-end benchmark of ``PayoutStatusToSqlOperator`` into SQLite, against the naive Airflow way.

The simulator runs in its own process (``python -m vexora_provider.testing serve``) on 127.0.0.1
with a fixed latency L on every call. In the same run this script measures:

- ``operator``: ``PayoutStatusToSqlOperator.execute`` (fresh SQLite file each run): N trades,
  C in flight, batches of B; compared with the Little's-law bound N·L/C;
- ``naive``: what a DAG author writes with stock Airflow pieces: a loop of single
  ``VexoraHook.get_payout_status`` calls, then ``DbApiHook.insert_rows(replace=True)`` without
  ``executemany``. It runs on a smaller N (it takes ~L per trade) and is reported per trade and
  extrapolated to N — stated as such in the output;
- ``rss``: peak RSS (``ru_maxrss``) of a child process that syncs ``--rss-n`` trades.

Each timed mode runs ``--runs`` times; the summary reports medians.

    .venv/bin/python bench/bench_operator.py                      # N=10000, L=50 ms, C=50, 3 runs
    .venv/bin/python bench/bench_operator.py --rss-n 100000       # plus the 100k peak-RSS run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIX = "success=0.6,partial=0.05,pending=0.2,failed=0.1,unknown=0.05"


@contextmanager
def simulator(payouts: int, latency_ms: float) -> Any:
    """Run the simulator CLI in a subprocess; yield its info (URL, credentials)."""
    with tempfile.TemporaryDirectory() as tmp:
        info_file = Path(tmp) / "info.json"
        cmd = [
            sys.executable,
            "-m",
            "vexora_provider.testing",
            "serve",
            "--port",
            "0",
            "--seed",
            "5",
            "--payouts",
            str(payouts),
            "--mix",
            MIX,
            "--info-file",
            str(info_file),
        ]
        if latency_ms:
            cmd += ["--latency-ms", str(latency_ms)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not info_file.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start")
                time.sleep(0.05)
            yield json.loads(info_file.read_text())
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def connections(info: dict[str, Any], db_path: Path) -> None:
    conn = {
        "conn_type": "vexora",
        "host": info["base_url"],
        "login": info["merchant_no"],
        "password": info["secret"],
    }
    os.environ["AIRFLOW_CONN_VEXORA_BENCH"] = json.dumps(conn)
    os.environ["AIRFLOW_CONN_WH_BENCH"] = json.dumps({"conn_type": "sqlite", "host": str(db_path)})


def trade_nos(n: int) -> list[str]:
    return [f"SIM{i:08d}" for i in range(n)]


def run_operator(n: int, concurrency: int, batch_size: int, db_path: Path) -> dict[str, Any]:
    from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator

    op = PayoutStatusToSqlOperator(
        task_id="bench",
        vexora_conn_id="vexora_bench",
        sql_conn_id="wh_bench",
        trade_nos=trade_nos(n),
        concurrency=concurrency,
        batch_size=batch_size,
        max_failed_ratio=1.0,
    )
    start = time.perf_counter()
    summary = op.execute({})  # type: ignore[arg-type]
    summary["wall_s"] = time.perf_counter() - start
    return summary


def run_naive(n: int, db_path: Path) -> float:
    """A loop of single requests, then ``insert_rows`` without executemany; returns wall seconds."""
    from datetime import UTC, datetime

    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    from vexora_provider.hooks.vexora import VexoraHook
    from vexora_provider.warehouse import STATUS_COLUMNS, SqliteWriter, TableName, status_row

    db = SqliteHook(sqlite_conn_id="wh_bench")
    writer = SqliteWriter(db, TableName.parse("naive"))
    writer.create_tables()
    writer.close()
    hook = VexoraHook("vexora_bench")
    start = time.perf_counter()
    rows = []
    for trade_no in trade_nos(n):
        status = hook.get_payout_status(trade_no)
        rows.append(writer.adapt_status(status_row(hook.config.merchant_no, status, datetime.now(UTC))))
    db.insert_rows("naive", rows, target_fields=list(STATUS_COLUMNS), replace=True)
    hook.close()
    return time.perf_counter() - start


def child_rss(args: argparse.Namespace) -> None:
    """In a fresh process: sync ``--n`` trades, print peak RSS before and after as JSON."""
    import vexora_provider.operators.payout_status  # noqa: F401 - import cost belongs to the baseline

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = run_operator(args.n, args.concurrency, args.batch_size, Path(os.environ["BENCH_DB"]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "n": args.n,
                "baseline_rss_mb": round(baseline, 1),
                "peak_rss_mb": round(peak, 1),
                "wall_s": round(summary["wall_s"], 2),
                "loaded": summary["loaded"],
                "failed": summary["failed"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-n", type=int, default=200)
    parser.add_argument("--rss-n", type=int, default=0, help="also measure peak RSS for this many trades")
    parser.add_argument("--rss-latency-ms", type=float, default=5.0)
    parser.add_argument("--rss-concurrency", type=int, default=64)
    parser.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="vexora-bench-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    if args.child_rss:
        child_rss(args)
        return
    import logging

    logging.disable(logging.INFO)  # progress lines would drown the results
    results: dict[str, Any] = {
        "n": args.n,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "batch_size": args.batch_size,
        "runs": args.runs,
    }
    ideal = args.n * args.latency_ms / 1000 / args.concurrency
    with tempfile.TemporaryDirectory() as tmp, simulator(args.n, args.latency_ms) as info:
        walls, naive = [], []
        for run in range(args.runs):
            db = Path(tmp) / f"op{run}.db"
            connections(info, db)
            summary = run_operator(args.n, args.concurrency, args.batch_size, db)
            walls.append(summary["wall_s"])
            print(
                f"operator run {run + 1}: {summary['wall_s']:.2f} s, loaded {summary['loaded']}, "
                f"failed {summary['failed']}",
                flush=True,
            )
            naive_wall = run_naive(args.naive_n, db)
            naive.append(naive_wall / args.naive_n)
            print(
                f"naive run {run + 1}: {args.naive_n} trades in {naive_wall:.2f} s "
                f"({naive_wall / args.naive_n * 1000:.1f} ms/trade)",
                flush=True,
            )
    wall = statistics.median(walls)
    per_trade = statistics.median(naive)
    results.update(
        {
            "ideal_s": round(ideal, 2),
            "operator_wall_s": round(wall, 2),
            "operator_wall_runs_s": [round(w, 2) for w in walls],
            "ratio_to_ideal": round(wall / ideal, 3),
            "operator_trades_per_s": round(args.n / wall),
            "naive_n": args.naive_n,
            "naive_ms_per_trade": round(per_trade * 1000, 2),
            "naive_extrapolated_s": round(per_trade * args.n, 1),
            "speedup_vs_naive": round(per_trade * args.n / wall, 1),
        }
    )
    if args.rss_n:
        with tempfile.TemporaryDirectory() as tmp, simulator(args.rss_n, args.rss_latency_ms) as info:
            connections(info, Path(tmp) / "rss.db")
            env = {**os.environ, "BENCH_DB": str(Path(tmp) / "rss.db")}
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child-rss",
                    "--n",
                    str(args.rss_n),
                    "--concurrency",
                    str(args.rss_concurrency),
                    "--batch-size",
                    str(args.batch_size),
                ],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results["rss"] = json.loads(out.strip().splitlines()[-1])
            results["rss"]["latency_ms"] = args.rss_latency_ms
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
