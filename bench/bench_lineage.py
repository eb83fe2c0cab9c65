"""What OpenLineage costs a 10,000-trade ``PayoutStatusToSqlOperator`` sync into SQLite.

The simulator runs in its own process with a fixed latency L on every call (as in
``bench_operator.py``), and counts the requests it receives. In the same run, alternating:

- ``extraction``: in one process, the operator's ``get_openlineage_facets_on_start`` before
  ``execute`` and ``get_openlineage_facets_on_complete`` after it, each serialized to the event
  JSON the way OpenLineage does; reported against the sync's own wall time, with the requests
  the gateway received during extraction (must be 0);
- ``dag.test() on/off``: a fresh interpreter runs ``dag.test()`` of a one-task DAG with the sync,
  with OpenLineage enabled (file transport: listener, forks, extraction and emission of START
  and COMPLETE) or disabled; the wall of ``dag.test()`` and the gateway's request count;
- ``hook``: the per-call cost of hook lineage after its first report (what every call of a
  10,000-trade fan-out pays), against the fan-out's wall time.

Medians over ``--runs``; the 1-minute load average is printed with the results.

    .venv/bin/python bench/bench_lineage.py                  # N=10000, L=50 ms, C=50, 3 runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from bench_operator import ROOT, connections, simulator, trade_nos

DAG_SOURCE = textwrap.dedent(
    """
    import os

    import pendulum
    from airflow.sdk import DAG

    from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator

    with DAG("bench_lineage", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        PayoutStatusToSqlOperator(
            task_id="sync",
            vexora_conn_id="vexora_bench",
            sql_conn_id="wh_bench",
            trade_nos=[f"SIM{i:08d}" for i in range(int(os.environ["BENCH_N"]))],
            concurrency=int(os.environ["BENCH_CONCURRENCY"]),
            max_failed_ratio=1.0,
        )
    """
)


def requests_seen(info: dict[str, Any]) -> int:
    """Requests the simulator has answered so far (its admin counters, not the client's)."""
    stats = httpx.get(f"{info['url']}/_simulator/stats", timeout=30).json()
    return int(stats["total"])


def extraction_run(info: dict[str, Any], n: int, concurrency: int, db: Path) -> dict[str, float]:
    """One sync in a fresh interpreter, with the lineage methods around it (see ``child_extraction``)."""
    connections(info, db)
    env = {
        **os.environ,
        "BENCH_INFO": json.dumps(info),
        "BENCH_N": str(n),
        "BENCH_CONCURRENCY": str(concurrency),
    }
    return _child(["--child-extraction"], env)


def _child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run this script with ``args`` in a fresh interpreter; return the JSON it printed last."""
    done = subprocess.run(
        [sys.executable, __file__, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    return json.loads([x for x in done.stdout.splitlines() if x.startswith("{")][-1])  # type: ignore[no-any-return]


def _in_fork(call: Callable[[], Any]) -> tuple[float, int]:
    """Run ``call`` in a forked child, as the OpenLineage listener does; return its ms and JSON size."""
    from openlineage.client.serde import Serde

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: time the call and its serialization, report, leave at once
        os.close(read_end)
        start = time.perf_counter()
        size = len(Serde.to_json(call()))
        os.write(write_end, json.dumps([(time.perf_counter() - start) * 1000, size]).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        ms, size = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return ms, size


def child_extraction() -> None:
    """
    As in a worker with OpenLineage enabled: its listener is imported when the task starts; it
    forks a child that calls ``get_openlineage_facets_on_start`` before ``execute`` and another
    that calls ``..._on_complete`` after it. Each result is serialized as the event's JSON.
    """
    import airflow.providers.openlineage.plugins.adapter
    import airflow.providers.openlineage.plugins.listener  # noqa: F401 - the plugin's own imports

    from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator

    info = json.loads(os.environ["BENCH_INFO"])
    op = PayoutStatusToSqlOperator(
        task_id="bench",
        vexora_conn_id="vexora_bench",
        sql_conn_id="wh_bench",
        trade_nos=trade_nos(int(os.environ["BENCH_N"])),
        concurrency=int(os.environ["BENCH_CONCURRENCY"]),
        max_failed_ratio=1.0,
    )
    before_start = requests_seen(info)
    start_ms, start_size = _in_fork(op.get_openlineage_facets_on_start)
    after_start = requests_seen(info)
    t0 = time.perf_counter()
    summary = op.execute({})  # type: ignore[arg-type]
    sync_s = time.perf_counter() - t0
    before_complete = requests_seen(info)
    complete_ms, complete_size = _in_fork(lambda: op.get_openlineage_facets_on_complete(None))
    after_complete = requests_seen(info)
    result = {
        "sync_s": sync_s,
        "start_ms": start_ms,
        "complete_ms": complete_ms,
        "sync_requests": before_complete - after_start,
        "lineage_requests": (after_start - before_start) + (after_complete - before_complete),
        "event_kb": (start_size + complete_size) / 1024,
        "loaded": summary["loaded"],
    }
    print(json.dumps(result))


def dag_test_run(
    info: dict[str, Any], home: Path, n: int, concurrency: int, openlineage: bool
) -> dict[str, Any]:
    """``dag.test()`` of the one-task DAG in a fresh interpreter; returns its wall and requests."""
    db = home / f"wh-{time.monotonic_ns()}.db"
    connections(info, db)
    env = {
        **os.environ,
        "BENCH_N": str(n),  # the DAG numbers its trades as trade_nos() does
        "BENCH_CONCURRENCY": str(concurrency),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {
                    "name": "bench",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(home / "dags")},
                }
            ]
        ),
    }
    if openlineage:
        transport = {"type": "file", "log_file_path": str(home / "events.jsonl"), "append": True}
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(transport)
    else:
        env["AIRFLOW__OPENLINEAGE__DISABLED"] = "true"
    before = requests_seen(info)
    result = _child(["--child-dag-test", str(home / "dags")], env)
    result["requests"] = requests_seen(info) - before
    return result


def child_dag_test(dags: str) -> None:
    """In the fresh interpreter: run the DAG, print the wall of ``dag.test()`` as JSON."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=dags).dags["bench_lineage"]
    start = time.perf_counter()
    run = dag.test()
    wall = time.perf_counter() - start
    (ti,) = run.get_task_instances()
    print(json.dumps({"state": ti.state, "dag_test_s": wall}))


def hook_lineage_per_call_ns(calls: int) -> float:
    """Nanoseconds one ``read`` costs once the hook has reported (a set lookup)."""
    from vexora_provider.lineage.hook import PayoutsLineage

    lineage = PayoutsLineage(object())
    lineage.read("3060414594")  # the one report (the collector: a no-op here)
    start = time.perf_counter_ns()
    for _ in range(calls):
        lineage.read("3060414594")
    return (time.perf_counter_ns() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child-dag-test", help=argparse.SUPPRESS)
    parser.add_argument("--child-extraction", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="vexora-bench-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    if args.child_dag_test:
        child_dag_test(args.child_dag_test)
        return
    if args.child_extraction:
        child_extraction()
        return
    import logging

    logging.disable(logging.INFO)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    extraction: list[dict[str, float]] = []
    dag_tests: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp, simulator(args.n, args.latency_ms) as info:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "bench_lineage_dag.py").write_text(DAG_SOURCE)
        for run in range(args.runs):
            result = extraction_run(info, args.n, args.concurrency, home / f"x{run}.db")
            extraction.append(result)
            print(
                f"extraction run {run + 1}: sync {result['sync_s']:.2f} s, "
                f"start {result['start_ms']:.1f} ms, "
                f"complete {result['complete_ms']:.1f} ms, gateway requests {result['lineage_requests']}",
                flush=True,
            )
            for openlineage in (run % 2 == 0, run % 2 != 0):  # alternate which mode goes first
                done = dag_test_run(info, home, args.n, args.concurrency, openlineage)
                dag_tests[openlineage].append(done)
                print(
                    f"dag.test() run {run + 1}, OpenLineage {'on ' if openlineage else 'off'}: "
                    f"{done['dag_test_s']:.2f} s, {done['requests']} requests, {done['state']}",
                    flush=True,
                )
    sync_s = statistics.median(r["sync_s"] for r in extraction)
    lineage_ms = statistics.median(r["start_ms"] + r["complete_ms"] for r in extraction)
    on = statistics.median(r["dag_test_s"] for r in dag_tests[True])
    off = statistics.median(r["dag_test_s"] for r in dag_tests[False])
    per_call_ns = hook_lineage_per_call_ns(args.n)
    results = {
        "n": args.n,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "runs": args.runs,
        "load_1m": round(os.getloadavg()[0], 2),
        "sync_s": round(sync_s, 2),
        "extraction_ms": round(lineage_ms, 1),
        "extraction_start_ms": round(statistics.median(r["start_ms"] for r in extraction), 1),
        "extraction_complete_ms": round(statistics.median(r["complete_ms"] for r in extraction), 1),
        "extraction_share_pct": round(lineage_ms / 1000 / sync_s * 100, 3),
        "extraction_gateway_requests": max(r["lineage_requests"] for r in extraction),
        "events_kb": round(statistics.median(r["event_kb"] for r in extraction), 1),
        "dag_test_on_s": round(on, 2),
        "dag_test_off_s": round(off, 2),
        "dag_test_on_runs_s": [round(r["dag_test_s"], 2) for r in dag_tests[True]],
        "dag_test_off_runs_s": [round(r["dag_test_s"], 2) for r in dag_tests[False]],
        "dag_test_overhead_pct": round((on - off) / off * 100, 2),
        "dag_test_requests_on": sorted({r["requests"] for r in dag_tests[True]}),
        "dag_test_requests_off": sorted({r["requests"] for r in dag_tests[False]}),
        "hook_lineage_ns_per_call": round(per_call_ns, 1),
        "hook_lineage_share_of_fanout_pct": round(per_call_ns * args.n / 1e9 / sync_s * 100, 5),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
