"""Create benchmark: what never paying twice costs per payout, against a naive create.

The simulator serves on loopback (its own process, so its CPU is not the client's) and answers
every call after a fixed latency ``L`` (a ``latency`` fault rule). In the same run, alternating,
the client creates N payouts one after another with:

- ``safe``: ``VexoraHook.create_payout`` -- a status query, then the create (two round trips);
- ``naive``: one signed ``POST /disbursements`` per payout on a plain ``httpx.Client``, no query
  and no settling of unclear answers (what a hand-written task does).

The summary reports medians over ``--runs``: wall seconds, creates per second, the ratio of safe
to naive, client CPU per create (``time.process_time``) and the 1-minute load average seen.

    .venv/bin/python bench/bench_create.py              # N=300, L=20 ms, 5 runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from vexora_provider.signing import signed_body, timestamp_ms

FIELDS = {"accountNo": "0123456789", "bankCode": "058", "accountName": "Ada Obi"}


def _serve(latency_ms: float) -> None:
    from vexora_provider.testing import VexoraSimulator

    with VexoraSimulator(seed=1) as sim, sim.serve() as server:
        sim.merchant.available = sim.merchant.available * 1000  # never run out of balance
        sim.add_fault("latency", latency_ms=latency_ms)
        print(json.dumps({"url": server.url, "merchant": sim.merchant_no, "secret": sim.secret}), flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin


def _safe(conn: str, prefix: str, n: int) -> None:
    from vexora_provider.hooks.vexora import VexoraHook

    os.environ["AIRFLOW_CONN_VEXORA_DEFAULT"] = conn
    hook = VexoraHook()
    for i in range(n):
        hook.create_payout(trade_no=f"{prefix}{i:06d}", amount="10.00", fields=FIELDS)
    hook.close()


def _naive(info: dict[str, Any], prefix: str, n: int) -> None:
    headers = {"merchantNo": info["merchant"], "Content-Type": "application/json"}
    with httpx.Client(base_url=f"{info['url']}/nigeria", headers=headers) as client:
        for i in range(n):
            fields = {"tradeNo": f"{prefix}{i:06d}", "amount": "10.00", **FIELDS, "timestamp": timestamp_ms()}
            answer = client.post(
                "/v1/vexora/disbursements", content=json.dumps(signed_body(fields, info["secret"]))
            )
            assert answer.json()["code"] == "0000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.latency_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None
    info = json.loads(server.stdout.readline())
    conn = json.dumps(
        {
            "conn_type": "vexora",
            "host": f"{info['url']}/nigeria",
            "login": info["merchant"],
            "password": info["secret"],
        }
    )
    results: dict[str, list[tuple[float, float]]] = {"safe": [], "naive": []}
    loads = []
    try:
        for run in range(args.runs):
            for mode in ("safe", "naive") if run % 2 == 0 else ("naive", "safe"):
                prefix = f"{mode[0].upper()}{run}-"
                wall, cpu = time.perf_counter(), time.process_time()
                if mode == "safe":
                    _safe(conn, prefix, args.n)
                else:
                    _naive(info, prefix, args.n)
                results[mode].append((time.perf_counter() - wall, time.process_time() - cpu))
            loads.append(os.getloadavg()[0])
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(30)
    print(f"N={args.n} sequential creates, L={args.latency_ms:g} ms per call, {args.runs} runs (medians)")
    walls = {mode: statistics.median(w for w, _ in runs) for mode, runs in results.items()}
    for mode, runs in results.items():
        cpu_ms = statistics.median(c for _, c in runs) / args.n * 1000
        rate = args.n / walls[mode]
        print(f"  {mode:5}  {walls[mode]:6.2f} s  {rate:6.1f} creates/s  {cpu_ms:5.2f} ms CPU/create")
    ratio, load = walls["safe"] / walls["naive"], statistics.median(loads)
    print(f"  safe / naive wall: {ratio:.2f}; load average {load:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        _serve(float(sys.argv[2]))
    else:
        main()
