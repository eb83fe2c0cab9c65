"""Upsert-only benchmark: the operator's warehouse writers vs ``DbApiHook.insert_rows``.

Rows are real ``PayoutStatus`` rows (parsed from gateway-shaped JSON, raw JSON text included),
converted and checked for the target the way the operator does as they arrive (that cost is
reported apart, per row: ``prepare_us_per_row``). For each target the writer loads N rows in
batches of B (one transaction per batch), then loads the same N again, fetched later (every row
a conflict → update). The naive path is stock common-sql: ``insert_rows(replace=True)`` without
``executemany`` (one ``execute`` per row), on a smaller N.

The guard (the ordering rule in the upsert's conditional ``WHERE``/``IF()`` and the detection of
final-to-final changes) is measured against the same writer without it (``unguarded``: an
unconditional upsert, everything else equal), alternating within each run; ``guard_cost_*`` is
the throughput lost, as a fraction.

Targets: SQLite (a file in a temp dir), PostgreSQL and MariaDB when their servers answer
(``VEXORA_TEST_POSTGRES_DSN``, ``VEXORA_TEST_MYSQL_DSN``, the test suite's defaults otherwise).
Each measurement runs ``--runs`` times; medians are reported.

    .venv/bin/python bench/bench_upsert.py                 # N=100000, B=1000, 3 runs
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_DSN = os.environ.get("VEXORA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_DSN = os.environ.get("VEXORA_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
STATES = ["0000", "0000", "0000", "0015", "00029", "0001"]


def make_rows(n: int, message: str) -> list[tuple[Any, ...]]:
    from vexora_provider.models import StatusMap, parse_payout_status
    from vexora_provider.warehouse import status_row

    status_map, tz, now = StatusMap(), ZoneInfo("Africa/Lagos"), datetime.now(UTC)
    rows = []
    for i in range(n):
        data = {
            "tradeNo": f"T{i:09d}",
            "platFormTradeNo": f"VX{i:016d}",
            "status": STATES[i % 6],
            "message": message,
            "amount": Decimal(f"{1000 + i % 977}.{i % 100:02d}"),
            "successTime": "2026-01-02 10:00:00",
        }
        status = parse_payout_status(data, trade_no=data["tradeNo"], status_map=status_map, tz=tz)
        rows.append(status_row("3060414594", status, now))
    return rows


def answers(dsn: str) -> bool:
    parts = urlsplit(dsn)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def connection(dsn: str, conn_type: str, **extra: Any) -> str:
    parts = urlsplit(dsn)
    return json.dumps(
        {
            "conn_type": conn_type,
            "host": parts.hostname,
            "port": parts.port,
            "login": parts.username,
            "password": parts.password or "",
            "schema": parts.path.lstrip("/"),
            "extra": extra,
        }
    )


def hook_for(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).get_hook()


def drop(hook: Any, table: str, quote: str) -> None:
    conn = hook.get_conn()
    cur = conn.cursor()
    for name in (table, f"{table}_errors"):
        cur.execute(f"DROP TABLE IF EXISTS {quote}{name}{quote}")
    conn.commit()
    conn.close()


def unguarded(writer: Any) -> Any:
    """The same writer with an unconditional upsert and no reversal detection (the baseline)."""
    from vexora_provider.warehouse import STATUS_COLUMNS
    from vexora_provider.warehouse.sql import update_set

    columns, q = STATUS_COLUMNS, writer.quote
    keys, cols = f"{q}merchant_no{q}, {q}trade_no{q}", writer._columns(columns)
    if writer.dialect == "postgresql":
        sql = (
            f"INSERT INTO {writer.status_sql} ({cols}) SELECT {cols} FROM {writer.stage} "
            'ORDER BY "merchant_no" COLLATE "C", "trade_no" COLLATE "C" '
            f"ON CONFLICT ({keys}) DO UPDATE SET " + update_set(columns, q, "EXCLUDED.{col}")
        )
    elif writer.dialect == "sqlite":
        sql = (
            writer._insert_sql(writer.status_sql, columns)
            + f" ON CONFLICT ({keys}) DO UPDATE SET "
            + update_set(columns, q, "excluded.{col}")
        )
    else:
        sql = (
            writer._insert_sql(writer.status_sql, columns)
            + " ON DUPLICATE KEY UPDATE "
            + update_set(columns, q, "VALUES({col})")
        )

    def upsert(cur: Any, rows: list[Any]) -> list[Any]:
        if writer.dialect == "postgresql":
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {writer.stage} ON COMMIT DELETE ROWS AS "
                f"SELECT {cols} FROM {writer.status_sql} WITH NO DATA"
            )
            writer._copy(cur, f"COPY {writer.stage} ({cols}) FROM STDIN", rows)
            cur.execute(sql)
        else:
            cur.executemany(sql, rows)
        return []

    writer._upsert_statuses = upsert
    return writer


def bench_writers(conn_id: str, rows: list[Any], again: list[Any], batch: int) -> dict[str, dict[str, float]]:
    """Load N rows, then N later answers, through the guarded and the unguarded writer.

    The two alternate batch by batch (in turn first), so background load hits them alike.
    """
    from vexora_provider.warehouse import TableName, writer_for

    writers = {}
    for variant in ("guarded", "unguarded"):
        # SQLite: one file each, so the two tables' pages do not interleave in one file.
        variant_conn = f"{conn_id}_b" if variant == "unguarded" and conn_id == "bench_sqlite" else conn_id
        writer = writer_for(hook_for(variant_conn), TableName.parse(f"bench_{uuid.uuid4().hex[:8]}"))
        writers[variant] = unguarded(writer) if variant == "unguarded" else writer
        writer.create_tables()
    prepared, prepare_us, seconds = {}, {}, {}
    for variant, writer in writers.items():
        start = time.perf_counter()
        # The operator converts and checks each row as its status arrives (off the write path).
        prepared[variant] = ([writer.adapt_status(r) for r in rows], [writer.adapt_status(r) for r in again])
        prepare_us[variant] = (time.perf_counter() - start) / (len(rows) + len(again)) * 1e6
        seconds[variant] = [0.0, 0.0]
    try:
        for phase in (0, 1):
            for number, start in enumerate(range(0, len(rows), batch)):
                order = list(writers) if number % 2 == 0 else list(reversed(writers))
                for variant in order:
                    data = prepared[variant][phase][start : start + batch]
                    began = time.perf_counter()
                    writers[variant].write_batch(data, [], batch=number + 1)
                    seconds[variant][phase] += time.perf_counter() - began
    finally:
        for writer in writers.values():
            writer.close()
            drop(writer.hook, writer.table.name, writer.quote)
    return {
        variant: {
            "insert_rows_per_s": len(rows) / seconds[variant][0],
            "update_rows_per_s": len(again) / seconds[variant][1],
            "prepare_us_per_row": prepare_us[variant],
        }
        for variant in writers
    }


def bench_naive(conn_id: str, rows: list[Any]) -> float:
    """Stock ``insert_rows(replace=True)``, no executemany: rows per second."""
    from vexora_provider.warehouse import STATUS_COLUMNS, TableName, writer_for

    hook = hook_for(conn_id)
    table = TableName.parse(f"naive_{uuid.uuid4().hex[:8]}")
    writer = writer_for(hook, table)
    writer.create_tables()
    adapted = [writer.adapt_status(r) for r in rows]
    writer.close()
    kwargs: dict[str, Any] = {"replace": True, "commit_every": 1000}
    if writer.dialect == "postgresql":
        kwargs["replace_index"] = ["merchant_no", "trade_no"]
    try:
        fields = list(STATUS_COLUMNS)
        start = time.perf_counter()
        hook.insert_rows(table.name, adapted, target_fields=fields, **kwargs)
        seconds = time.perf_counter() - start
    finally:
        drop(hook, table.name, writer.quote)
    return len(rows) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--naive-n", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="vexora-bench-airflow-"))
    import logging

    logging.disable(logging.INFO)  # insert_rows logs every commit
    tmp = tempfile.mkdtemp(prefix="vexora-bench-upsert-")
    os.environ["AIRFLOW_CONN_BENCH_SQLITE"] = json.dumps({"conn_type": "sqlite", "host": f"{tmp}/w.db"})
    os.environ["AIRFLOW_CONN_BENCH_SQLITE_B"] = json.dumps({"conn_type": "sqlite", "host": f"{tmp}/b.db"})
    targets = ["bench_sqlite"]
    if answers(POSTGRES_DSN):
        os.environ["AIRFLOW_CONN_BENCH_PG"] = connection(POSTGRES_DSN, "postgres")
        targets.append("bench_pg")
    if answers(MYSQL_DSN):
        try:
            import airflow.providers.mysql  # noqa: F401

            os.environ["AIRFLOW_CONN_BENCH_MARIADB"] = connection(
                MYSQL_DSN, "mysql", client="mysql-connector-python"
            )
            targets.append("bench_mariadb")
        except ImportError:
            pass
    rows, again = make_rows(args.n, "in processing"), make_rows(args.n, "updated")
    results: dict[str, Any] = {
        "n": args.n,
        "batch_size": args.batch_size,
        "runs": args.runs,
        "naive_n": args.naive_n,
    }
    for target in targets:
        guarded, plain, naive = [], [], []
        for _ in range(args.runs):
            measured = bench_writers(target, rows, again, args.batch_size)
            guarded.append(measured["guarded"])
            plain.append(measured["unguarded"])
            naive.append(bench_naive(target, rows[: args.naive_n]))
        result = {key: round(statistics.median(r[key] for r in guarded), 1) for key in guarded[0]}
        for key in ("insert_rows_per_s", "update_rows_per_s"):
            result[f"unguarded_{key}"] = round(statistics.median(r[key] for r in plain), 1)
            # Per run (the two variants shared its load), then the median of the runs' costs.
            costs = [1 - g[key] / p[key] for g, p in zip(guarded, plain, strict=True)]
            result[f"guard_cost_{key.split('_')[0]}"] = round(statistics.median(costs), 3)
        result["naive_insert_rows_per_s"] = round(statistics.median(naive))
        result["speedup_vs_naive"] = round(result["insert_rows_per_s"] / result["naive_insert_rows_per_s"], 1)
        result["load_avg_1m"] = round(os.getloadavg()[0], 2)
        results[target.removeprefix("bench_")] = result
        print(target, result, flush=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
