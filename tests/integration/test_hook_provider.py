"""The provider as Airflow sees it: registration, the ``vexora`` connection type, and
``airflow connections test`` against a loopback stub of ``queryBalance``.

Each ``airflow`` CLI call starts a fresh interpreter (~3 s here), so the checks are few and coarse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vexora_provider.signing import verify

pytestmark = pytest.mark.integration

SECRET = "dbecac55466b4958a2d06069fcf49e18"
MERCHANT = "3060414594"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


class _BalanceStub(BaseHTTPRequestHandler):
    """``queryBalance`` that checks the signature like the gateway: 0000 if good, else 8000."""

    requests: list[dict[str, object]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "merchantNo": self.headers.get("merchantNo"), **body})
        good = self.path.endswith("/v1/vexora/queryBalance") and verify(body, SECRET, body.get("sign"))
        answer = (
            {"code": "0000", "msg": "success", "data": {"availableAmount": 10.5, "freezeAmount": "0"}}
            if good
            else {"code": "8000", "msg": "request failed", "data": None}
        )
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stub_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BalanceStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/nigeria"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=str(tmp_path_factory.mktemp("airflow-home")),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
    )
    return env


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def _connection(host: str, password: str = SECRET) -> str:
    # Only host, login and password: a connection test must work without any extra.
    return json.dumps({"conn_type": "vexora", "host": host, "login": MERCHANT, "password": password})


class TestProviderRegistration:
    def test_providers_list(self, airflow_env: dict[str, str]) -> None:
        result = _airflow(airflow_env, "providers", "list", "--output", "json")
        assert result.returncode == 0, result.stderr
        packages = {p["package_name"]: p for p in json.loads(result.stdout)}
        assert "airflow-provider-vexora" in packages

    def test_providers_hooks(self, airflow_env: dict[str, str]) -> None:
        result = _airflow(airflow_env, "providers", "hooks", "--output", "json")
        assert result.returncode == 0, result.stderr
        hooks = {h["connection_type"]: h for h in json.loads(result.stdout)}
        vexora = hooks["vexora"]
        assert vexora["class"] == "vexora_provider.hooks.vexora.VexoraHook"
        assert vexora["conn_id_attribute_name"] == "vexora_conn_id"
        assert vexora["package_name"] == "airflow-provider-vexora"


class TestConnectionsTest:
    def test_success(self, airflow_env: dict[str, str], stub_url: str) -> None:
        env = {**airflow_env, "AIRFLOW_CONN_VEXORA_CLI_OK": _connection(stub_url)}
        _BalanceStub.requests.clear()
        result = _airflow(env, "connections", "test", "vexora_cli_ok")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Connection success!" in result.stdout
        (request,) = _BalanceStub.requests
        assert request["path"] == "/nigeria/v1/vexora/queryBalance"
        assert request["merchantNo"] == MERCHANT
        leaked = SECRET in result.stdout + result.stderr
        assert not leaked, "the CLI output shows the app secret"  # never print it

    def test_wrong_secret(self, airflow_env: dict[str, str], stub_url: str) -> None:
        wrong = "0123456789abcdef0123456789abcdef"
        env = {**airflow_env, "AIRFLOW_CONN_VEXORA_CLI_BAD": _connection(stub_url, password=wrong)}
        result = _airflow(env, "connections", "test", "vexora_cli_bad")
        output = result.stdout + result.stderr
        assert "Connection failed!" in output
        assert "VexoraAuthError" in output
        assert "8000" in output
        leaked = wrong in output
        assert not leaked, "the CLI output shows the app secret"  # never print it

    def test_refused(self, airflow_env: dict[str, str]) -> None:
        env = {**airflow_env, "AIRFLOW_CONN_VEXORA_CLI_DOWN": _connection("http://127.0.0.1:9/nigeria")}
        result = _airflow(env, "connections", "test", "vexora_cli_down")
        output = result.stdout + result.stderr
        assert "Connection failed!" in output
        assert "connection refused by 127.0.0.1:9" in output
