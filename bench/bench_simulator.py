"""Simulator capacity: requests/s one simulator worker serves with signature checks on.

Starts ``vexora-simulator serve`` (one uvicorn worker, signature verified on every call) and, as
a baseline in the same run, a naive Starlette app doing the same work (parse JSON, check the MD5
signature, look the payout up, answer JSON). Each is loaded by an aiohttp client at C concurrent
requests for N signed ``queryPayOutResult`` calls; runs alternate between the two servers so
background load hits both alike, and the medians are reported with their ratio. Also reports the
in-process rate (httpx.Client over ``sim.transport()``, no socket).

    .venv/bin/python bench/bench_simulator.py [--runs 5] [--n 6000] [--c 64] [--json out.jsonl]

Client and servers share the machine's cores: the numbers are a floor, not the server's ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from vexora_provider.signing import signed_body, timestamp_ms
from vexora_provider.testing import VexoraSimulator

PAYOUTS = 3000
SEED = 1


# -- baseline: the same endpoint written the obvious way ------------------------------------------
def baseline_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from vexora_provider.signing import verify

    sim = VexoraSimulator(seed=SEED)
    sim.create_payouts(PAYOUTS, {"success": 0.7, "pending": 0.3})
    payouts = {p.trade_no: p.as_dict() for p in sim.state.payouts.values()}

    async def query(request: Request) -> JSONResponse:
        fields = await request.json()
        envelope: dict[str, Any] = {"success": False, "timestamp": int(time.time() * 1000), "data": None}
        if request.headers.get("merchantNo") != sim.merchant_no or not verify(
            fields, sim.secret, fields.get("sign")
        ):
            return JSONResponse({"code": "8000", "msg": "sign error", **envelope})
        payout = payouts.get(fields.get("tradeNo"))
        if payout is None:
            return JSONResponse({"code": "8000", "msg": "order not exist", **envelope})
        data = {k: payout[k] for k in ("tradeNo", "platFormTradeNo", "status", "message", "orderAmount")}
        return JSONResponse({**envelope, "code": "0000", "msg": "success", "success": True, "data": data})

    return Starlette(routes=[Route("/{region}/v1/vexora/queryPayOutResult", query, methods=["POST"])])


def run_baseline(port: int) -> None:
    import uvicorn

    uvicorn.run(baseline_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- servers as separate processes ----------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def simulator_process(engine: str) -> Iterator[tuple[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        info_file = Path(tmp) / "sim.json"
        command = [
            sys.executable,
            "-m",
            "vexora_provider.testing",
            "serve",
            "--seed",
            str(SEED),
            "--payouts",
            str(PAYOUTS),
            "--mix",
            "success=0.7,pending=0.3",
            "--info-file",
            str(info_file),
            "--engine",
            engine,
        ]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not info_file.exists():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("simulator did not start")
                time.sleep(0.02)
            yield json.loads(info_file.read_text())["base_url"], proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


@contextmanager
def baseline_process() -> Iterator[tuple[str, int]]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--baseline-server", str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}/x", timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("baseline did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/nigeria", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


# -- load ------------------------------------------------------------------------------------------
def _requests(n: int) -> tuple[dict[str, str], list[bytes]]:
    sim = VexoraSimulator(seed=SEED)  # same seed: same credentials as the servers
    headers = {"merchantNo": sim.merchant_no, "Content-Type": "application/json"}
    bodies = [
        json.dumps(
            signed_body({"tradeNo": f"SIM{i % PAYOUTS:08d}", "timestamp": timestamp_ms()}, sim.secret)
        ).encode()
        for i in range(n)
    ]
    return headers, bodies


async def _load(base_url: str, n: int, c: int) -> dict[str, float]:
    headers, bodies = _requests(n)
    url = base_url + "/v1/vexora/queryPayOutResult"
    latencies: list[float] = []
    errors = 0
    queue = list(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

        async def worker() -> None:
            nonlocal errors
            while queue:
                body = bodies[queue.pop()]
                start = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    reply = await response.json()
                latencies.append(time.perf_counter() - start)
                errors += reply.get("code") != "0000"

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(c))), timeout=120)
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": n / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (Linux ``/proc``): the server's own cost."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process_rate(n: int) -> float:
    sim = VexoraSimulator(seed=SEED)
    sim.create_payouts(PAYOUTS, {"success": 0.7, "pending": 0.3})
    headers, bodies = _requests(n)
    with httpx.Client(transport=sim.transport(), base_url="http://sim/nigeria") as client:
        started = time.perf_counter()
        for body in bodies:
            client.post("/v1/vexora/queryPayOutResult", content=body, headers=headers)
        return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--c", type=int, default=64)
    parser.add_argument("--json", type=Path, help="append one JSON line per measurement")
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        run_baseline(args.baseline_server)
        return
    names = ("simulator", "simulator-uvicorn", "starlette-baseline")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with (
        simulator_process("fast") as fast,
        simulator_process("uvicorn") as uv,
        baseline_process() as base,
    ):
        targets = list(zip(names, (fast, uv, base), strict=True))
        for _, (url, _pid) in targets:
            asyncio.run(_load(url, 500, args.c))  # warm-up: connections, caches
        for run in range(args.runs):
            for name, (url, pid) in targets:
                cpu_before = cpu_seconds(pid)
                result = asyncio.run(_load(url, args.n, args.c))
                # The client shares the 2 cores and saturates first; server CPU per request gives
                # the capacity one worker would reach with a core to itself.
                result["server_cpu_us"] = (cpu_seconds(pid) - cpu_before) / args.n * 1e6
                results[name].append(result)
                print(
                    f"run {run + 1} {name:>18}: {result['rps']:7.0f} req/s  p50 {result['p50_ms']:.1f} ms  "
                    f"p99 {result['p99_ms']:.1f} ms  server CPU {result['server_cpu_us']:.0f} us/req  "
                    f"errors {result['errors']:.0f}",
                    flush=True,
                )
    inproc = [in_process_rate(2000) for _ in range(3)]
    med = {name: statistics.median(r["rps"] for r in rs) for name, rs in results.items()}
    cpu = {name: statistics.median(r["server_cpu_us"] for r in rs) for name, rs in results.items()}
    summary = {
        "n": args.n,
        "c": args.c,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "simulator_rps_median": round(med["simulator"]),
        "simulator_uvicorn_rps_median": round(med["simulator-uvicorn"]),
        "baseline_rps_median": round(med["starlette-baseline"]),
        "ratio_vs_baseline": round(med["simulator"] / med["starlette-baseline"], 2),
        "ratio_uvicorn_vs_baseline": round(med["simulator-uvicorn"] / med["starlette-baseline"], 2),
        "server_cpu_us_per_req_median": {name: round(v) for name, v in cpu.items()},
        "capacity_one_core_rps": {name: round(1e6 / v) for name, v in cpu.items() if v > 0},
        "simulator_rps_min_max": [
            round(min(r["rps"] for r in results["simulator"])),
            round(max(r["rps"] for r in results["simulator"])),
        ],
        "simulator_p50_ms_median": round(statistics.median(r["p50_ms"] for r in results["simulator"]), 1),
        "simulator_p99_ms_median": round(statistics.median(r["p99_ms"] for r in results["simulator"]), 1),
        "in_process_sync_rps_median": round(statistics.median(inproc)),
        "errors": sum(r["errors"] for rs in results.values() for r in rs),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        with args.json.open("a") as out:
            out.write(json.dumps({"bench": "simulator", **summary, "raw": results}) + "\n")


if __name__ == "__main__":
    main()
