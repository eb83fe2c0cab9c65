"""Hook fan-out benchmark: ``VexoraAsyncSession.stream_payout_statuses`` against N·L/C.

A raw ASGI Vexora stand-in (uvicorn + httptools, in a subprocess on 127.0.0.1, port chosen by the
OS) answers ``queryPayOutResult`` after a fixed latency ``L``, checking every signature. In the
same run the client measures:

- ``hook``: our bulk API (``stream_payout_statuses``) with its default sender (the attempt driver
  over aiohttp), N trades, C in flight;
- ``raw-aiohttp``: the floor -- the same signing and parsing straight on ``aiohttp``, C workers;
- ``plain-httpx``: the same work on one plain ``httpx.AsyncClient`` (its own httpcore pool) at C
  in flight (smaller N: it runs at ~100 req/s; wall extrapolated per request to N);
- ``sequential``: one request at a time through the hook's session (smaller N, extrapolated per
  request to N).

Modes alternate within each run so background load hits them alike. The summary reports
medians over ``--runs``: wall seconds, ratio to N·L/C, req/s, client CPU per request
(``time.process_time`` of the client process only) and the 1-minute load average seen.

    .venv/bin/python bench/bench_fanout.py                 # N=5000, L=50 ms, C=64, 3 runs
    .venv/bin/python bench/bench_fanout.py --loop uvloop   # the same on uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

SECRET = "dbecac55466b4958a2d06069fcf49e18"
MERCHANT = "3060414594"
SERVER_LIFETIME_S = 900  # the server stops by itself even if this script is killed


# --- server (runs in a subprocess) ----------------------------------------------------------


def _server_main(latency_s: float) -> None:
    import uvicorn

    secret = SECRET.encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away (a cancelled request): nothing to answer
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        fields = json.loads(body)
        trade_no = fields.get("tradeNo", "")
        canonical = "".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k] != "")
        digest = hashlib.md5(canonical.encode() + secret, usedforsecurity=False).hexdigest()
        good = digest == fields.get("sign")
        await asyncio.sleep(latency_s)
        if good:
            out = (
                b'{"code":"0000","msg":"success","success":true,"timestamp":1728613320708,"data":'
                b'{"tradeNo":"'
                + trade_no.encode()
                + b'","platFormTradeNo":"P'
                + trade_no.encode()
                + b'","status":"0000","message":"success","amount":"300.00",'
                b'"successTime":"2024-10-11 10:22:00"}}'
            )
        else:
            out = b'{"code":"9999","msg":"sign error","success":false,"data":null}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": out})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    # host/port, not a pre-bound socket: uvicorn then sets TCP_NODELAY; with ``sockets=`` it does
    # not, and Nagle + delayed ACK add ~40 ms to every request.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop=os.environ.get("BENCH_SERVER_LOOP", "uvloop"),
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=2048,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        print(port, flush=True)
        loop = asyncio.get_running_loop()
        # Stop when the parent closes our stdin, or after the lifetime cap.
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        await asyncio.wait(
            [task, stdin_closed], timeout=SERVER_LIFETIME_S, return_when=asyncio.FIRST_COMPLETED
        )
        server.should_exit = True
        await task

    asyncio.run(serve())


class Server:
    """The stand-in in a subprocess; a context manager that always stops it."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.latency_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        return f"http://127.0.0.1:{port}/nigeria"

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --- client ---------------------------------------------------------------------------------


def _hook(base_url: str) -> Any:
    from vexora_provider.hooks.vexora import VexoraHook

    os.environ["AIRFLOW_CONN_VEXORA_BENCH"] = json.dumps(
        {
            "conn_type": "vexora",
            "host": base_url,
            "login": MERCHANT,
            "password": SECRET,
            "extra": {"max_attempts": 1},
        }
    )
    return VexoraHook("vexora_bench")


async def _drain(trade_nos: Iterator[str], concurrency: int, fetch: Callable[[str], Awaitable[bool]]) -> int:
    """C workers pulling from one iterator: the loop every baseline shares."""
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for trade_no in trade_nos:
            done = await fetch(trade_no)
            ok += done

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


async def _run(base_url: str, mode: str, n: int, concurrency: int) -> dict[str, Any]:
    import aiohttp
    import httpx

    from vexora_provider.hooks._protocol import (
        PAYOUT_STATUS_PATH,
        Answer,
        read_status,
        request_headers,
        signed_json,
    )
    from vexora_provider.models import PayoutStatus

    hook = _hook(base_url)
    config = await hook.aget_config()
    url = config.url(PAYOUT_STATUS_PATH)
    trade_nos = (f"T{i:010d}" for i in range(n))
    ok = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with (
        hook.async_session(concurrency=concurrency) as session,
        httpx.AsyncClient(limits=limits, headers=request_headers(config)) as client,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as raw,
    ):

        async def via_httpx(trade_no: str) -> bool:
            # The hook's work (sign, JSON, parse) on one plain AsyncClient and its own pool.
            body = signed_json({"tradeNo": trade_no}, config.secret)
            response = await client.post(url, content=body)
            answer = Answer(response.status_code, response.content)
            return isinstance(read_status(answer, trade_no, config), PayoutStatus)

        async def via_aiohttp(trade_no: str) -> bool:
            # Floor: the same work straight on aiohttp, no httpx objects, no retry/limiter.
            body = signed_json({"tradeNo": trade_no}, config.secret)
            async with raw.post(url, data=body, headers=request_headers(config)) as response:
                answer = Answer(response.status, await response.read())
            return isinstance(read_status(answer, trade_no, config), PayoutStatus)

        # Connection set-up, imports and config outside the timed part.
        await session.get_payout_status("WARMUP")
        await via_httpx("WARMUP")
        await via_aiohttp("WARMUP")
        load = os.getloadavg()[0]
        cpu0, t0 = time.process_time(), time.perf_counter()
        if mode == "sequential":
            for trade_no in trade_nos:
                ok += isinstance(await session.get_payout_status(trade_no), PayoutStatus)
        elif mode == "hook":
            async for item in session.stream_payout_statuses(trade_nos, concurrency=concurrency):
                ok += isinstance(item, PayoutStatus)
        elif mode == "plain-httpx":
            ok = await _drain(trade_nos, concurrency, via_httpx)
        elif mode == "raw-aiohttp":
            ok = await _drain(trade_nos, concurrency, via_aiohttp)
        else:
            raise ValueError(mode)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "mode": mode,
        "n": n,
        "c": 1 if mode == "sequential" else concurrency,
        "ok": ok,
        "wall_s": wall,
        "rps": n / wall,
        "cpu_ms_per_req": 1000 * cpu / n,
        "load1": load,
    }


def _loop_factory(name: str) -> Any:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("-c", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n-sequential", type=int, default=60)
    parser.add_argument("--n-plain", type=int, default=800)
    parser.add_argument("--modes", default="hook,raw-aiohttp,plain-httpx,sequential")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--json", help="append raw results as JSON lines to this file")
    args = parser.parse_args()
    if args.serve is not None:
        _server_main(args.serve)
        return

    latency = args.latency_ms / 1000
    sizes = {
        "hook": args.n,
        "raw-aiohttp": args.n,
        "plain-httpx": args.n_plain,
        "sequential": args.n_sequential,
    }
    modes = args.modes.split(",")
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    with Server(latency) as base_url:
        for run in range(args.runs):
            for mode in modes:
                with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
                    result = runner.run(_run(base_url, mode, sizes[mode], args.c))
                result.update(run=run, loop=args.loop, latency_ms=args.latency_ms)
                assert result["ok"] == result["n"], result
                results[mode].append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
                if args.json:
                    with open(args.json, "a") as out:
                        out.write(json.dumps(result) + "\n")

    ideal = args.n * latency / args.c
    print(
        f"\nN={args.n} L={args.latency_ms:g}ms C={args.c} loop={args.loop}: "
        f"ideal N*L/C = {ideal:.2f}s; medians of {args.runs} runs\n"
    )
    print(
        f"| mode | N measured | wall (s) | wall for N={args.n} (s) | x N·L/C | req/s "
        "| client CPU/req (ms) | load1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    medians: dict[str, float] = {}
    for mode in modes:
        rows = results[mode]
        wall = statistics.median(r["wall_s"] for r in rows)
        rps = statistics.median(r["rps"] for r in rows)
        cpu = statistics.median(r["cpu_ms_per_req"] for r in rows)
        load = statistics.median(r["load1"] for r in rows)
        scaled = args.n / rps  # same N as the bulk run (extrapolated per request for smaller N)
        medians[mode] = scaled
        print(
            f"| {mode} | {rows[0]['n']} | {wall:.2f} | {scaled:.2f} | {scaled / ideal:.2f} | "
            f"{rps:.0f} | {cpu:.3f} | {load:.1f} |"
        )
    if "hook" in medians:
        for other in ("sequential", "plain-httpx", "raw-aiohttp"):
            if other in medians:
                print(f"hook is {medians[other] / medians['hook']:.2f}x faster than {other}")


if __name__ == "__main__":
    main()
