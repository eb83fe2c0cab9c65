"""The callback route on a real ``airflow api-server`` whose metadata database is PostgreSQL.

PostgreSQL is where concurrent redelivery matters: two identical callbacks in two transactions at
once must still make exactly one asset event. The database is a fresh schema on the server of
``VEXORA_TEST_POSTGRES_DSN``; a consumer DAG scheduled on the merchant's payouts asset is
serialized into it, so events also queue a run for that DAG.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg2
import pytest

from tests.integration.airflow_support import (
    AIRFLOW,
    ApiServer,
    airflow_cli,
    airflow_env,
    consumer_dag,
    free_port,
    postgres_url,
)
from vexora_provider.signing import signed_body

pytestmark = pytest.mark.integration

MERCHANT = "3060414594"
OTHER_MERCHANT = "7000000001"  # a connection whose merchant no DAG consumes
SECRET = "pg-callback-secret-0c9e71d2b4"
CONSUMER = "vexora_it_consumer"


def connection(merchant_no: str) -> str:
    return json.dumps(
        {
            "conn_type": "vexora",
            "host": "https://sandbox-api.vexora.com/nigeria",
            "login": merchant_no,
            "password": SECRET,
        }
    )


class Metadata:
    """Read-write SQL on the deployment's schema (the test's view of Airflow's database)."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.conn = psycopg2.connect(dsn, options=f"-csearch_path={schema}")
        self.conn.autocommit = True
        self.schema = schema

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def events(self) -> list[dict[str, Any]]:
        return [row[0] for row in self.rows("select extra from asset_event order by id")]

    def everything_as_text(self) -> str:
        tables = self.rows(
            "select table_name from information_schema.tables where table_schema = %s", self.schema
        )
        return "\n".join(
            str(row) for (table,) in tables for row in self.rows(f'select t::text from "{table}" t')
        )


@pytest.fixture(scope="module")
def deployment(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, Metadata]]:
    if not AIRFLOW.exists():
        pytest.skip(f"no airflow executable at {AIRFLOW}")
    schema = f"vexora_cb_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_dsn)
    admin.autocommit = True
    admin.cursor().execute(f'create schema "{schema}"')
    home = tmp_path_factory.mktemp("airflow-api")
    dags = home / "dags"
    dags.mkdir()
    (dags / "consumer.py").write_text(consumer_dag(CONSUMER, MERCHANT))
    env = airflow_env(
        home,
        dags,
        free_port(),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres_url(postgres_dsn, schema),
        AIRFLOW_CONN_VEXORA_DEFAULT=connection(MERCHANT),
        AIRFLOW_CONN_VEXORA_OTHER=connection(OTHER_MERCHANT),
    )
    metadata = Metadata(postgres_dsn, schema)
    server = ApiServer(env, home / "api-server.out")
    try:
        airflow_cli(env, "db", "migrate")
        airflow_cli(env, "dags", "reserialize")
        (asset_id,) = metadata.rows("select id from asset where uri = %s", f"vexora://{MERCHANT}/payouts")[0]
        # A marker older than the dedupe window: the receiver prunes it on its first write.
        metadata.rows(
            "insert into asset_state_store (asset_id, key, value, updated_at) "
            "values (%s, 'vexora.callback.success.ANCIENT', '{}', now() - interval '30 days')",
            asset_id,
        )
        server.start()
        server.wait_ready()
        yield server, metadata
    finally:
        server.stop()
        metadata.conn.close()
        admin.cursor().execute(f'drop schema "{schema}" cascade')
        admin.close()


def callback(trade_no: str, status: str = "0000", **fields: str) -> dict[str, str]:
    body = {
        "platFormTradeNo": f"VX{trade_no}",
        "tradeNo": trade_no,
        "amount": "1250.50",
        "status": status,
        "message": "success",
        "successTime": "2026-03-01 08:30:00",
        **fields,
    }
    return signed_body(body, SECRET)


def post(server: ApiServer, body: Any, conn_id: str = "vexora_default") -> httpx.Response:
    return httpx.post(f"{server.url}/vexora/callbacks/{conn_id}", json=body, timeout=30)


class TestCallbackRouteOnPostgres:
    def test_settlement_becomes_one_event_and_queues_the_consumer(
        self, deployment: tuple[ApiServer, Metadata]
    ) -> None:
        server, metadata = deployment
        before = len(metadata.events())
        response = post(server, callback("PG-1"))
        assert (response.status_code, response.text) == (200, "OK")
        assert response.headers["content-type"].startswith("text/plain")
        assert metadata.events()[before:] == [
            {
                "trade_no": "PG-1",
                "platform_trade_no": "VXPG-1",
                "status_code": "0000",
                "state": "success",
                "amount": "1250.50",
                "success_time": "2026-03-01T08:30:00+01:00",
                "source": "callback",
            }
        ]
        assert metadata.rows("select target_dag_id from asset_dag_run_queue") == [(CONSUMER,)]
        assert post(server, callback("PG-1")).text == "OK"  # redelivered
        assert len(metadata.events()) == before + 1

    def test_concurrent_identical_callbacks_make_one_event(
        self, deployment: tuple[ApiServer, Metadata]
    ) -> None:
        server, metadata = deployment
        before = len(metadata.events())
        body = callback("PG-TWIN", "00029", message="REJECTED")
        start = threading.Barrier(16)

        def deliver(_: int) -> tuple[int, str]:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                client.get("/api/v2/monitor/health")  # connected before the race starts
                start.wait()
                response = client.post("/vexora/callbacks/vexora_default", json=body)
                return response.status_code, response.text

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(deliver, range(16)))
        assert answers == [(200, "OK")] * 16
        assert [e["trade_no"] for e in metadata.events()[before:]] == ["PG-TWIN"]

    def test_concurrent_distinct_callbacks_each_make_an_event(
        self, deployment: tuple[ApiServer, Metadata]
    ) -> None:
        server, metadata = deployment
        before = len(metadata.events())
        bodies = [callback(f"PG-MANY-{n:02d}") for n in range(24)]
        with ThreadPoolExecutor(12) as pool:
            assert {r.text for r in pool.map(lambda b: post(server, b), bodies)} == {"OK"}
        assert sorted(e["trade_no"] for e in metadata.events()[before:]) == [
            f"PG-MANY-{n:02d}" for n in range(24)
        ]

    def test_callback_after_the_watcher_announced_it_makes_no_event(
        self, deployment: tuple[ApiServer, Metadata]
    ) -> None:
        server, metadata = deployment
        (asset_id,) = metadata.rows("select id from asset where uri = %s", f"vexora://{MERCHANT}/payouts")[0]
        metadata.rows(
            "insert into asset_state_store (asset_id, key, value, updated_at, last_updated_by_kind) "
            "values (%s, 'vexora.poll.announced', %s, now(), 'watcher')",
            asset_id,
            json.dumps({"trades": {"PG-POLLED": "partial"}}),
        )
        before = len(metadata.events())
        assert post(server, callback("PG-POLLED", "0001")).text == "OK"
        assert len(metadata.events()) == before

    def test_refusals_create_nothing(self, deployment: tuple[ApiServer, Metadata]) -> None:
        server, metadata = deployment
        before = len(metadata.events())
        assert post(server, {**callback("PG-BAD"), "sign": "0" * 32}).status_code == 401
        assert post(server, callback("PG-BAD"), conn_id="nope").status_code == 404
        no_asset = post(server, callback("PG-OTHER"), conn_id="vexora_other")
        assert (no_asset.status_code, no_asset.text) == (503, "FAIL")
        assert post(server, callback("PG-WAIT", "0015")).text == "OK"  # pending: nothing settled
        assert len(metadata.events()) == before

    def test_old_markers_are_pruned(self, deployment: tuple[ApiServer, Metadata]) -> None:
        server, metadata = deployment
        post(server, callback("PG-PRUNE"))
        keys = {k for (k,) in metadata.rows("select key from asset_state_store")}
        assert "vexora.callback.success.ANCIENT" not in keys
        assert "vexora.callback.success.PG-PRUNE" in keys

    def test_secret_in_no_log_and_not_in_the_database(self, deployment: tuple[ApiServer, Metadata]) -> None:
        server, metadata = deployment
        post(server, callback("PG-LEAK"))
        assert "Vexora callback on 'vexora_default'" in server.text()
        # Say which text leaked, never what: ``assert SECRET not in text`` would print the secret.
        leaked = SECRET in server.text()
        assert not leaked, "the app secret is in the API server's output"
        leaked = SECRET in metadata.everything_as_text()
        assert not leaked, "the app secret is in the metadata database"
        leaked = callback("PG-LEAK")["sign"] in server.text()
        assert not leaked, "a request signature is in the API server's output"
