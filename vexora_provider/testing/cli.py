"""``vexora-simulator serve``: a local Vexora on loopback for manual runs, demos and benchmarks.

Prints the URL, the merchant credentials and a ready ``AIRFLOW_CONN_...`` line, optionally writes
the same as JSON (``--info-file``) for scripts, then serves until SIGINT/SIGTERM. Serving needs the
``testing`` extra; without it the command says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from vexora_provider.testing.faults import FaultRule, parse_fault
from vexora_provider.testing.server import SimulatorDependencyError
from vexora_provider.testing.simulator import VexoraSimulator
from vexora_provider.testing.state import PendingSpec

__all__ = ["build_parser", "main"]


def _mix(text: str) -> dict[str, float]:
    mix = {}
    for item in filter(None, text.split(",")):
        name, _, weight = item.partition("=")
        mix[name.strip()] = float(weight)
    return mix


def _polls(text: str) -> PendingSpec:
    lo, sep, hi = text.partition("-")
    return (int(lo), int(hi)) if sep else int(lo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vexora-simulator", description="A local Vexora payout gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the simulator on a loopback port")
    add = serve.add_argument
    add("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    add("--port", type=int, default=0, help="TCP port, 0 for a free one (default 0)")
    add("--seed", type=int, default=0, help="seed for credentials, payouts and faults (default 0)")
    add("--merchant-no", help="merchant number (default: derived from the seed)")
    add("--secret", help="merchant app secret (default: derived from the seed)")
    add("--payouts", type=int, default=0, help="create this many payouts SIM00000000… (default 0)")
    add("--mix", type=_mix, default=None, help="final-state weights, e.g. success=0.6,failed=0.1,pending=0.3")
    add("--regions", default="", help="comma-separated regions to spread the payouts over")
    add("--pending-polls", type=_polls, default=None, help="polls answered 0015 first: K or LO-HI")
    add("--pending-seconds", type=float, default=None, help="seconds a payout stays pending")
    add("--latency-ms", type=float, default=0.0, help="added latency on every API call")
    add("--latency-max-ms", type=float, default=None, help="uniform latency between --latency-ms and this")
    add(
        "--fault",
        action="append",
        default=[],
        type=parse_fault,
        metavar="SPEC",
        help="fault rule, e.g. kind=http_503,endpoint=queryPayOutResult,probability=0.05 (repeatable)",
    )
    add("--region", default="nigeria", help="region used in the printed connection (default nigeria)")
    add("--conn-id", default="vexora_default", help="connection id used in the printed AIRFLOW_CONN_ line")
    add("--callback-time-scale", type=float, default=1.0, help="compress the callback retry schedule")
    add("--notify-url", default=None, help="loopback URL the --payouts send their callbacks to")
    add("--info-file", type=Path, help="also write URL and credentials as JSON to this file")
    add("--engine", choices=("fast", "uvicorn"), default="fast", help="HTTP server engine (default fast)")
    add("--log-level", default="warning", help="uvicorn log level (default warning)")
    return parser


def _rules(args: argparse.Namespace) -> list[FaultRule]:
    rules: list[FaultRule] = []
    if args.latency_ms or args.latency_max_ms:
        rules.append(FaultRule("latency", latency_ms=args.latency_ms, latency_max_ms=args.latency_max_ms))
    return rules + list(args.fault)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vexora-simulator`` console script."""
    args = build_parser().parse_args(argv)
    sim = VexoraSimulator(
        args.seed,
        args.merchant_no,
        args.secret,
        callback_time_scale=args.callback_time_scale,
        faults=_rules(args),
    )
    trade_nos = (
        sim.create_payouts(
            args.payouts,
            args.mix,
            regions=[r for r in args.regions.split(",") if r] or None,
            pending_polls=args.pending_polls,
            pending_seconds=args.pending_seconds,
            notify_url=args.notify_url,
        )
        if args.payouts
        else []
    )
    try:
        server = sim.serve(args.host, args.port, log_level=args.log_level, engine=args.engine)
    except (ValueError, OSError, SimulatorDependencyError) as exc:
        sim.close()
        print(f"vexora-simulator: {exc}", file=sys.stderr)
        return 2
    # A signal between here and uvicorn installing its own handlers must still stop us cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.request_stop())
    env = server.airflow_env(args.conn_id, args.region)
    info = {
        "url": server.url,
        "base_url": server.base_url(args.region),
        "region": args.region,
        "merchant_no": sim.merchant_no,
        "secret": sim.secret,
        "seed": sim.seed,
        "payouts": len(trade_nos),
        "first_trade_no": trade_nos[0] if trade_nos else None,
        "last_trade_no": trade_nos[-1] if trade_nos else None,
        "admin_url": f"{server.url}/_simulator/",
        "airflow_env": env,
        "pid": os.getpid(),
    }
    if args.info_file is not None:
        tmp = args.info_file.with_name(args.info_file.name + ".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(args.info_file)  # readers never see a half-written file
    lines = [
        f"Vexora simulator listening on {server.url}",
        f"  base URL ({args.region}): {info['base_url']}",
        f"  merchantNo: {sim.merchant_no}",
        f"  secret:     {sim.secret}",
        f"  seed:       {sim.seed}   payouts: {len(trade_nos)}"
        + (f" ({trade_nos[0]} … {trade_nos[-1]})" if trade_nos else ""),
        f"  admin:      {info['admin_url']}",
        # Indented JSON: readable, fits a terminal, and still pastes as one shell command.
        *(f"export {name}='{json.dumps(json.loads(value), indent=2)}'" for name, value in env.items()),
    ]
    print("\n".join(lines), flush=True)
    try:
        server.run()
    finally:
        sim.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
