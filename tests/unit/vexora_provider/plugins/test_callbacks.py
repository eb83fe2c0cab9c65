"""The callback route through FastAPI's test client: signature, every refusal, dedupe, size cap, logs.

The sink here is an in-memory stand-in with the real sink's contract (one event per settlement);
the real sink, on a real metadata database, is covered by the integration and end-to-end tests.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vexora_provider.config import VexoraConfig
from vexora_provider.models import PayoutStatus
from vexora_provider.plugins import VexoraCallbackPlugin, callbacks
from vexora_provider.plugins._events import Recorded
from vexora_provider.plugins.callbacks import (
    MAX_BODY_BYTES,
    ConnectionCache,
    create_app,
    load_connection,
)
from vexora_provider.signing import signed_body

SECRET = "callback-secret-7d41c2a9e0b3f"
MERCHANT = "3060414594"
URL = "/callbacks/vexora_default"


class MemorySink:
    """Records settlements; one event per (merchant, trade, event key), like the database sink."""

    def __init__(self, answer: Recorded | Exception | None = None) -> None:
        self.answer = answer
        self.events: list[dict[str, Any]] = []
        self.keys: set[tuple[str, str, str]] = set()
        self.lock = threading.Lock()

    def record(self, *, merchant_no: str, status: PayoutStatus, extra: dict[str, Any]) -> Recorded:
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is not None:
            return self.answer
        from vexora_provider.assets import event_key

        with self.lock:
            key = (merchant_no, status.trade_no, event_key(status))
            if key in self.keys:
                return Recorded.DUPLICATE
            self.keys.add(key)
            self.events.append(extra)
        return Recorded.CREATED


def conn_json(secret: str = SECRET, conn_type: str = "vexora", **extra: Any) -> str:
    conn: dict[str, Any] = {
        "conn_type": conn_type,
        "host": "https://sandbox-api.vexora.com/nigeria",
        "login": MERCHANT,
        "password": secret,
    }
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


@pytest.fixture(autouse=True)
def connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", conn_json())


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def client(sink: MemorySink) -> Iterator[TestClient]:
    with TestClient(create_app(sink=sink)) as test_client:
        yield test_client


def callback(status: str = "0000", secret: str = SECRET, **fields: str) -> dict[str, str]:
    body = {
        "platFormTradeNo": "VX1000000000000001",
        "tradeNo": "T1",
        "amount": "300.00",
        "status": status,
        "message": "success",
        "successTime": "2026-01-02 10:00:00",
        **fields,
    }
    return signed_body({k: v for k, v in body.items() if v is not None}, secret)


def assert_fail(response: Any, http_status: int) -> None:
    assert (response.status_code, response.text) == (http_status, "FAIL")
    assert response.headers["content-type"].startswith("text/plain")


class TestCallbackRoute:
    @pytest.mark.parametrize(
        ("code", "state"),
        [("0000", "success"), ("0001", "partial"), ("00029", "failed"), ("0099", "unknown")],
    )
    def test_final_or_unknown_code_is_one_event(
        self, client: TestClient, sink: MemorySink, code: str, state: str
    ) -> None:
        response = client.post(URL, json=callback(code))
        assert (response.status_code, response.text) == (200, "OK")
        assert response.headers["content-type"].startswith("text/plain")
        assert sink.events == [
            {
                "trade_no": "T1",
                "platform_trade_no": "VX1000000000000001",
                "status_code": code,
                "state": state,
                "amount": "300.00",
                "success_time": "2026-01-02T10:00:00+01:00",  # nigeria: Africa/Lagos
                "source": "callback",
            }
        ]

    def test_pending_is_answered_without_an_event(self, client: TestClient, sink: MemorySink) -> None:
        response = client.post(URL, json=callback("0015", message="in processing", successTime=None))
        assert (response.status_code, response.text) == (200, "OK")
        assert sink.events == []

    def test_redelivery_answers_ok_and_creates_nothing(self, client: TestClient, sink: MemorySink) -> None:
        body = callback()
        answers = [client.post(URL, json=body).text for _ in range(9)]  # Vexora: 1 + 8 retries
        assert answers == ["OK"] * 9
        assert len(sink.events) == 1

    def test_a_later_final_state_after_an_unknown_code_is_a_new_event(
        self, client: TestClient, sink: MemorySink
    ) -> None:
        client.post(URL, json=callback("0099"))
        client.post(URL, json=callback("0000"))
        assert [e["state"] for e in sink.events] == ["unknown", "success"]

    def test_amount_sent_as_a_number_keeps_its_digits(self, client: TestClient, sink: MemorySink) -> None:
        signed = callback(amount="3.0000")  # the sign covers the number's text, 3.0000
        content = json.dumps(signed).replace('"3.0000"', "3.0000")
        assert '"amount": 3.0000' in content
        response = client.post(URL, content=content, headers={"Content-Type": "application/json"})
        assert response.text == "OK"
        assert sink.events[0]["amount"] == "3.0000"

    def test_no_success_time_is_null(self, client: TestClient, sink: MemorySink) -> None:
        client.post(URL, json=callback("00029", successTime=None))
        assert sink.events[0]["success_time"] is None

    @pytest.mark.parametrize(
        ("mutate", "http_status"),
        [
            (lambda b: {k: v for k, v in b.items() if k != "sign"}, 401),
            (lambda b: {**b, "sign": ""}, 401),
            (lambda b: {**b, "sign": "0" * 32}, 401),
            (lambda b: {**b, "sign": "é" * 32}, 401),
            (lambda b: {**b, "sign": 12345}, 401),
            (lambda b: {**b, "amount": "300.01"}, 401),  # tampered after signing
            (lambda b: callback(secret="another-merchant-secret"), 401),
        ],
        ids=["missing", "empty", "wrong", "non-ascii", "number", "tampered", "other-secret"],
    )
    def test_bad_sign_is_refused(
        self, client: TestClient, sink: MemorySink, mutate: Any, http_status: int
    ) -> None:
        assert_fail(client.post(URL, json=mutate(callback())), http_status)
        assert sink.events == []

    def test_upper_case_sign_is_the_same_sign(self, client: TestClient, sink: MemorySink) -> None:
        body = callback()
        assert client.post(URL, json={**body, "sign": body["sign"].upper()}).text == "OK"

    @pytest.mark.parametrize(
        "content",
        [b"not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b'{"a": NaN}'],
        ids=["text", "array", "string", "null", "binary", "nan"],
    )
    def test_body_not_a_json_object_is_refused(
        self, client: TestClient, sink: MemorySink, content: bytes
    ) -> None:
        assert_fail(client.post(URL, content=content), 400)
        assert sink.events == []

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ({"tradeNo": None}, "tradeNo is missing"),
            ({"tradeNo": "T" * 33}, "not a valid trade number"),
            ({"status": None}, "status is missing"),
            ({"status": "00 29"}, "not a status code"),
            ({"amount": "three"}, "amount is not an amount"),
            ({"successTime": "yesterday"}, "is not yyyy-MM-dd HH:mm:ss"),
        ],
        ids=["no-trade", "long-trade", "no-status", "bad-status", "bad-amount", "bad-time"],
    )
    def test_signed_but_malformed_is_refused(
        self,
        client: TestClient,
        sink: MemorySink,
        fields: dict[str, Any],
        reason: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        assert_fail(client.post(URL, json=callback(**fields)), 400)
        assert sink.events == []
        assert reason in caplog.text

    def test_unknown_connection_is_refused(self, client: TestClient, sink: MemorySink) -> None:
        assert_fail(client.post("/callbacks/no_such_conn", json=callback()), 404)
        assert_fail(client.post("/callbacks/bad%20id", json=callback()), 404)
        assert sink.events == []

    def test_connection_of_another_type_is_never_used(
        self, client: TestClient, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A postgres connection's password must not become a callback secret.
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", conn_json(conn_type="postgres"))
        assert_fail(client.post("/callbacks/warehouse", json=callback()), 404)
        assert sink.events == []

    def test_unusable_vexora_connection_is_refused(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_BROKEN", conn_json(surprise="x"))
        assert_fail(client.post("/callbacks/broken", json=callback()), 404)
        assert "cannot check callbacks" in caplog.text

    def test_body_over_64_kib_is_refused(self, client: TestClient, sink: MemorySink) -> None:
        body = callback(message="x" * MAX_BODY_BYTES)
        assert_fail(client.post(URL, json=body), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            text = json.dumps(body).encode()
            for start in range(0, len(text), 4096):
                yield text[start : start + 4096]

        assert_fail(client.post(URL, content=chunks()), 413)
        assert sink.events == []

    def test_body_at_the_limit_is_read(self, client: TestClient, sink: MemorySink) -> None:
        base = len(json.dumps(callback(message="")))
        body = callback(message="x" * (MAX_BODY_BYTES - base - 200))
        assert len(json.dumps(body)) <= MAX_BODY_BYTES
        assert client.post(URL, json=body).text == "OK"

    def test_no_asset_in_airflow_asks_vexora_to_retry(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with TestClient(create_app(sink=MemorySink(Recorded.NO_ASSET))) as client:
            assert_fail(client.post(URL, json=callback()), 503)
        assert f"schedule an unpaused DAG on payouts_asset('{MERCHANT}')" in caplog.text

    def test_database_failure_asks_vexora_to_retry(self, caplog: pytest.LogCaptureFixture) -> None:
        failure = RuntimeError("INSERT ... parameters: ('T1', '300.00')")
        with TestClient(create_app(sink=MemorySink(failure))) as client:
            assert_fail(client.post(URL, json=callback()), 500)
        assert "not recorded: RuntimeError" in caplog.text
        assert "300.00" not in caplog.text

    def test_logs_never_hold_the_body_sign_or_secret(
        self, client: TestClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        good = callback(message="BODY-MARKER-1")
        bad = {**callback(message="BODY-MARKER-2"), "sign": "f" * 32}
        for body in (good, good, bad, {**good, "sign": None}):
            client.post(URL, json=body)
        client.post(URL, content=b"BODY-MARKER-3")
        assert "Vexora callback on 'vexora_default'" in caplog.text
        needles = {"app secret": SECRET, "good sign": good["sign"], "body": "BODY-MARKER"}
        needles |= {"bad sign": "f" * 32, "platform trade no": "VX1000000000000001"}
        for what, needle in needles.items():
            leaked = needle in caplog.text  # never ``assert needle not in``: it would print the secret
            assert not leaked, f"a log line holds request content: the {what}"

    @pytest.mark.parametrize(
        ("method", "path", "http_status"),
        [
            ("GET", URL, 405),
            ("PUT", URL, 405),
            ("GET", "/", 404),
            ("GET", "/docs", 404),
            ("GET", "/redoc", 404),
            ("GET", "/openapi.json", 404),
            ("POST", "/callbacks", 404),
            ("POST", "/callbacks/a/b", 404),
        ],
    )
    def test_nothing_else_answers(self, client: TestClient, method: str, path: str, http_status: int) -> None:
        assert client.request(method, path).status_code == http_status

    def test_only_route_is_the_callback(self) -> None:
        app = create_app(sink=MemorySink())
        routes = [(r.path, sorted(r.methods)) for r in app.routes]  # type: ignore[attr-defined]
        assert routes == [("/callbacks/{vexora_conn_id}", ["POST"])]

    def test_rotated_secret_is_picked_up_on_the_first_mismatch(
        self, client: TestClient, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert client.post(URL, json=callback()).text == "OK"  # caches the connection
        monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", conn_json(secret="rotated-secret"))
        monkeypatch.setattr(callbacks, "_RELOAD_AFTER", 0.0)
        assert client.post(URL, json=callback("00029", secret="rotated-secret", tradeNo="T2")).text == "OK"
        assert [e["trade_no"] for e in sink.events] == ["T1", "T2"]

    def test_status_map_override_applies(
        self, client: TestClient, sink: MemorySink, monkeypatch: Any
    ) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_MAPPED", conn_json(status_map={"0099": "failed"}))
        assert client.post("/callbacks/mapped", json=callback("0099")).text == "OK"
        assert sink.events[0]["state"] == "failed"


class TestConnectionCache:
    def config(self, secret: str = SECRET) -> VexoraConfig:
        return VexoraConfig.from_connection_fields(
            host="https://x/nigeria", login=MERCHANT, password=secret, extra={}
        )

    def test_reuses_then_reloads(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loads: list[str] = []
        cache = ConnectionCache(lambda c: loads.append(c) or self.config(), ttl=60)
        assert cache.get("a") is cache.get("a")
        assert loads == ["a"]
        cache.get("a", max_age=0)
        assert loads == ["a", "a"]

    def test_unknown_is_not_cached_and_size_is_bounded(self) -> None:
        loads: list[str] = []
        cache = ConnectionCache(lambda c: loads.append(c) or (None if c == "x" else self.config()), size=2)
        assert cache.get("x") is None
        assert cache.get("x") is None
        for conn_id in ("a", "b", "c", "a"):
            cache.get(conn_id)
        assert loads == ["x", "x", "a", "b", "c", "a"]  # "a" was evicted by "c"

    def test_load_connection_refuses_other_types(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_PG", conn_json(conn_type="postgres"))
        assert load_connection("pg") is None
        assert load_connection("missing_conn") is None
        loaded = load_connection("vexora_default")
        assert loaded is not None
        assert loaded.merchant_no == MERCHANT


class TestVexoraCallbackPlugin:
    def test_mounted_at_vexora(self) -> None:
        [app] = VexoraCallbackPlugin().fastapi_apps
        assert app["url_prefix"] == "/vexora"
        assert isinstance(app["app"], FastAPI)
        assert VexoraCallbackPlugin.name == "vexora_callbacks"

    def test_loading_the_plugin_imports_no_web_framework(self) -> None:
        # Airflow loads plugins in every task process: the receiver must cost them nothing.
        code = (
            "import sys; from vexora_provider.plugins import VexoraCallbackPlugin; "
            "print(sorted(m for m in ('fastapi', 'starlette', 'vexora_provider.plugins.callbacks') "
            "if m in sys.modules))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "[]"

    def test_registered_through_the_airflow_plugins_entry_point(self) -> None:
        [entry] = [e for e in entry_points(group="airflow.plugins") if e.name == "vexora_callbacks"]
        assert entry.load() is VexoraCallbackPlugin
