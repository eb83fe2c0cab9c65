"""What the shared gateway budget costs a bulk fetch: Redis round trips per request, client CPU.

The simulator runs in its own process (``vexora-simulator serve``) with a fixed latency L. In the
same process and alternating within each run, the hook's bulk stream fetches N statuses at C in
flight three ways:

- ``local``: no budget extras (the per-session limiter; the baseline);
- ``in_flight``: ``budget_storage`` and ``max_in_flight = C``: one lease taken and given back in
  Redis per request, the cap never binding, so any slow-down is the budget's own cost;
- ``in_flight+rate``: also ``requests_per_second`` far above what is reached, so every request
  takes an entry of the ``limits`` moving window too.

Reported: wall time against the Little's-law bound ``N·L/C``, client CPU per request
(``time.process_time()``), and the ratio to ``local``; medians of ``--runs`` runs.

    .venv/bin/python bench/bench_budget.py            # N = 4,000, L = 20 ms, C = 32, 5 runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.airflow_support import simulator_process  # noqa: E402
from vexora_provider.hooks.vexora import VexoraHook  # noqa: E402
from vexora_provider.models import PayoutStatus  # noqa: E402

MODES: dict[str, dict[str, Any]] = {
    "local": {},
    "in_flight": {"max_in_flight": None},
    "in_flight+rate": {"max_in_flight": None, "requests_per_second": 10_000},
}


def run(sim: dict[str, Any], mode: str, args: argparse.Namespace, trades: list[str]) -> dict[str, Any]:
    conn = json.loads(sim["airflow_env"]["AIRFLOW_CONN_VEXORA_DEFAULT"])
    extra = {k: (args.concurrency if v is None else v) for k, v in MODES[mode].items()}
    if extra:
        extra["budget_storage"] = args.redis
    conn["extra"] = extra
    os.environ["AIRFLOW_CONN_VEXORA_DEFAULT"] = json.dumps(conn)

    async def fetch() -> int:
        stream = VexoraHook().astream_payout_statuses(trades, concurrency=args.concurrency)
        return sum([isinstance(r, PayoutStatus) async for r in stream])

    cpu, wall = time.process_time(), time.perf_counter()
    ok = asyncio.run(fetch())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    ideal = len(trades) * args.latency_ms / 1000 / args.concurrency
    return {
        "mode": mode,
        "ok": ok,
        "wall_s": round(wall, 3),
        "x_bound": round(wall / ideal, 2),
        "cpu_us_per_request": round(cpu / len(trades) * 1e6),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=4000, help="statuses per fetch (default 4,000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulator latency (default 20)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each mode (default 5)")
    parser.add_argument(
        "--redis", default=os.environ.get("VEXORA_TEST_REDIS_URL", "redis://127.0.0.1:6379/10")
    )
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        simulator_process(
            Path(tmp),
            *("--seed", "23", "--payouts", str(args.n), "--latency-ms", str(args.latency_ms)),
            *("--region", "indonesia"),
        ) as sim,
    ):
        trades = [f"SIM{i:08d}" for i in range(args.n)]
        for _ in range(args.runs):
            for mode in MODES:
                result = run(sim, mode, args, trades)
                print(json.dumps(result), flush=True)
                results.append(result)
    base = statistics.median(r["wall_s"] for r in results if r["mode"] == "local")
    base_cpu = statistics.median(r["cpu_us_per_request"] for r in results if r["mode"] == "local")
    print(
        f"\nN = {args.n}, L = {args.latency_ms:g} ms, C = {args.concurrency}, medians of {args.runs} runs\n"
    )
    print("| mode | wall s | × N·L/C | × local | client CPU µs / request | × local | load |")
    print("|---|---|---|---|---|---|---|")
    for mode in MODES:
        mine = [r for r in results if r["mode"] == mode]
        wall = statistics.median(r["wall_s"] for r in mine)
        cpu = statistics.median(r["cpu_us_per_request"] for r in mine)
        bound = statistics.median(r["x_bound"] for r in mine)
        print(
            f"| {mode} | {wall:.2f} | {bound:.2f} | {wall / base:.2f} | "
            f"{cpu:.0f} | {cpu / base_cpu:.2f} | {statistics.median(r['load_1m'] for r in mine):.1f} |"
        )


if __name__ == "__main__":
    main()
