"""What the trade-number rule costs, against the naive way and against the sync it feeds.

In one process, alternating, over N trade numbers (default 100,000; one in ten a repeat, one in
a hundred with surrounding whitespace):

- ``naive``: ``list(dict.fromkeys(trade_nos))`` -- de-duplication with no cleaning or checks;
- ``rule``: :func:`vexora_provider.trade_nos.coerce_trade_nos` -- what the sensor and the sync
  read their input with (strip, decode, check each entry, keep each trade once);
- ``stream``: :meth:`vexora_provider.trade_nos.DistinctTradeNos.pick` over the rule's output --
  what the hook's bulk stream applies again, per trade, as it pulls its input.

Prints medians over ``--runs`` and the cost of ``rule + stream`` per 10,000 trades, to set
against a 10,000-trade sync (about 10.8 s into SQLite with 50 ms gateway latency on our
machines; see docs/performance.md).

    .venv/bin/python bench/bench_trade_nos.py                 # N=100000, 7 runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from vexora_provider.trade_nos import DistinctTradeNos, coerce_trade_nos


def inputs(n: int) -> list[str]:
    values = [f"SIM{i:08d}" for i in range(n)]
    for i in range(0, n, 10):
        values[i] = values[i // 2]  # a repeat of an earlier one
    for i in range(5, n, 100):
        values[i] = f" {values[i]} "
    return values


def stream_pass(trade_nos: list[str]) -> list[object]:
    distinct = DistinctTradeNos()
    return [value for keep, value in map(distinct.pick, trade_nos) if keep]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    values = inputs(args.n)
    clean = list(coerce_trade_nos(values).trade_nos)
    times: dict[str, list[float]] = {"naive": [], "rule": [], "stream": []}
    for _ in range(args.runs):
        times["naive"].append(timed(lambda: list(dict.fromkeys(values))))
        times["rule"].append(timed(lambda: coerce_trade_nos(values)))
        times["stream"].append(timed(lambda: stream_pass(clean)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"N={args.n} runs={args.runs} load1={os.getloadavg()[0]:.2f}")
    for name, seconds in med.items():
        print(f"  {name:7s} {seconds * 1000:8.1f} ms  ({seconds / med['naive']:.1f}x naive)")
    per_10k = (med["rule"] + med["stream"]) * 10_000 / args.n
    print(f"  rule + stream per 10,000 trades: {per_10k * 1000:.1f} ms")


if __name__ == "__main__":
    main()
