"""Callback receiver: callbacks/s and latency of ``POST /vexora/callbacks/{conn}`` on a real API server.

Starts ``airflow api-server`` (``--workers`` uvicorn workers) on a fresh schema of a PostgreSQL
server, with a consumer DAG serialized so that every event also queues a run, as in production.
Then, alternating within each run so background load hits them alike, an aiohttp client at C
concurrent requests sends N requests of each kind:

- ``callback``: a new signed settlement: verify the sign, insert the dedupe marker, create the
  asset event, queue the consumer;
- ``redelivery``: the same callbacks again: verify the sign, find the marker, answer ``OK``;
- ``rest-events`` (baseline): Airflow's own ``POST /api/v2/assets/events`` with a bearer token,
  an external receiver's obvious path (no signature, no dedupe);
- ``health`` (floor): ``GET /api/v2/monitor/health``, the API server's HTTP cost alone.

Reports medians (min–max) of req/s, p50 and p99 latency, and the API server's CPU per request
(all its processes, from ``/proc``); checks that ``callback`` made exactly N events and
``redelivery`` none.

    .venv/bin/python bench/bench_callbacks.py [--runs 5] [--n 1000] [--c 16] [--workers 1]

The PostgreSQL server comes from ``VEXORA_BENCH_POSTGRES_DSN`` (else ``VEXORA_TEST_POSTGRES_DSN``,
else ``postgresql://postgres@127.0.0.1:5432/test``); the schema is dropped afterwards.
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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.airflow_support import (
    ApiServer,
    airflow_cli,
    airflow_env,
    consumer_dag,
    free_port,
    postgres_url,
)
from vexora_provider.signing import signed_body

MERCHANT = "3060414594"
SECRET = "bench-callback-secret-2f7a9c"
CONSUMER = "vexora_bench_consumer"
CONTENDERS = ("callback", "redelivery", "rest-events", "health")


@contextmanager
def deployment(dsn: str, workers: int) -> Iterator[tuple[ApiServer, Any]]:
    schema = f"vexora_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    admin.cursor().execute(f'create schema "{schema}"')
    meta = psycopg2.connect(dsn, options=f"-csearch_path={schema}")
    meta.autocommit = True
    with tempfile.TemporaryDirectory(prefix="vexora-bench-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "consumer.py").write_text(consumer_dag(CONSUMER, MERCHANT))
        conn = {"conn_type": "vexora", "host": "https://x/nigeria", "login": MERCHANT, "password": SECRET}
        env = airflow_env(
            home,
            home / "dags",
            free_port(),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres_url(dsn, schema),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW_CONN_VEXORA_DEFAULT=json.dumps(conn),
        )
        server = ApiServer(env, home / "api-server.out", workers=workers)
        try:
            airflow_cli(env, "db", "migrate")
            airflow_cli(env, "dags", "reserialize")
            server.start()
            server.wait_ready()
            yield server, meta
        finally:
            server.stop()
            meta.close()
            admin.cursor().execute(f'drop schema "{schema}" cascade')
            admin.close()


def count_events(meta: Any) -> int:
    with meta.cursor() as cur:
        cur.execute("select count(*) from asset_event")
        return int(cur.fetchone()[0])


def server_cpu(group: int) -> float:
    """User + system CPU seconds of every process in the API server's process group."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


Request = tuple[str, str, bytes | None, dict[str, str]]


async def load(requests: list[Request], c: int, expect: Callable[[int, str], bool]) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

        async def worker() -> None:
            nonlocal errors
            while queue:
                method, url, body, headers = queue.pop()
                start = time.perf_counter()
                async with session.request(method, url, data=body, headers=headers) as response:
                    text = await response.text()
                latencies.append(time.perf_counter() - start)
                errors += not expect(response.status, text)

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(c))), timeout=600)
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(requests) / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
    }


def requests_for(name: str, server: ApiServer, run: int, n: int, asset_id: int, token: str) -> list[Request]:
    json_headers = {"Content-Type": "application/json"}
    if name in ("callback", "redelivery"):
        url = f"{server.url}/vexora/callbacks/vexora_default"
        bodies = [
            signed_body(
                {
                    "tradeNo": f"B{run:02d}-{i:06d}",
                    "platFormTradeNo": f"VX{i}",
                    "amount": "100.00",
                    "status": "0000",
                },
                SECRET,
            )
            for i in range(n)
        ]
        return [("POST", url, json.dumps(b).encode(), json_headers) for b in bodies]
    if name == "rest-events":
        headers = {**json_headers, "Authorization": f"Bearer {token}"}
        url = f"{server.url}/api/v2/assets/events"
        return [
            (
                "POST",
                url,
                json.dumps({"asset_id": asset_id, "extra": {"trade_no": f"R{run}-{i}"}}).encode(),
                headers,
            )
            for i in range(n)
        ]
    return [("GET", f"{server.url}/api/v2/monitor/health", None, {})] * n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--c", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path, help="append one JSON line per measurement")
    args = parser.parse_args()
    dsn = os.environ.get(
        "VEXORA_BENCH_POSTGRES_DSN",
        os.environ.get("VEXORA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    with deployment(dsn, args.workers) as (server, meta):
        token = httpx.get(f"{server.url}/auth/token").json()["access_token"]
        assets = httpx.get(
            f"{server.url}/api/v2/assets", headers={"Authorization": f"Bearer {token}"}
        ).json()["assets"]
        asset_id = next(a["id"] for a in assets if a["uri"] == f"vexora://{MERCHANT}/payouts")
        assert server.process is not None
        group = server.process.pid
        expectations: dict[str, Callable[[int, str], bool]] = {
            "callback": lambda status, text: (status, text) == (200, "OK"),
            "redelivery": lambda status, text: (status, text) == (200, "OK"),
            "rest-events": lambda status, text: status == 200,
            "health": lambda status, text: status == 200,
        }
        # Warm up every path (imports, connection cache, pools) outside the measurement.
        for name in CONTENDERS:
            asyncio.run(load(requests_for(name, server, 99, 50, asset_id, token), 4, expectations[name]))
        for run in range(args.runs):
            for name in CONTENDERS:
                requests = requests_for(name, server, run, args.n, asset_id, token)
                events_before, cpu_before = count_events(meta), server_cpu(group)
                result = asyncio.run(load(requests, args.c, expectations[name]))
                result["cpu_us_per_request"] = (server_cpu(group) - cpu_before) / args.n * 1e6
                result["events"] = count_events(meta) - events_before
                result["load_1m"] = os.getloadavg()[0]
                results[name].append(result)
                print(
                    f"run {run + 1} {name:12s} {result['rps']:7.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
                    f"p99 {result['p99_ms']:6.1f} ms  cpu {result['cpu_us_per_request']:6.0f} µs/req  "
                    f"events +{result['events']:.0f}  errors {result['errors']:.0f}  "
                    f"load {result['load_1m']:.1f}",
                    flush=True,
                )
                if args.json:
                    with args.json.open("a") as out:
                        out.write(
                            json.dumps({"contender": name, "run": run, **vars(args), **result}, default=str)
                        )
                        out.write("\n")
    print(f"\nmedians of {args.runs} runs, N = {args.n}, C = {args.c}, workers = {args.workers}:")
    base = statistics.median(r["rps"] for r in results["rest-events"])
    for name, rows in results.items():

        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        rps = [r["rps"] for r in rows]
        print(
            f"{name:12s} {med('rps'):7.0f} req/s ({min(rps):.0f}–{max(rps):.0f})  "
            f"p50 {med('p50_ms'):6.1f} ms  p99 {med('p99_ms'):6.1f} ms  "
            f"cpu {med('cpu_us_per_request'):6.0f} µs/req  ×rest {med('rps') / base:.2f}  "
            f"events/run {med('events'):.0f}  errors {sum(r['errors'] for r in rows):.0f}"
        )


if __name__ == "__main__":
    main()
