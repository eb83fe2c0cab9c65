"""Proxy and TLS settings on every path: sync hook, async session, trigger and operator.

A loopback forward proxy (``network_support.LoopbackProxy``) records what it carries; a TLS front
with a certificate from a throwaway CA (``trustme``) puts the real simulator behind ``https://``.
Each path must go through the proxy when ``HTTPS_PROXY``/``HTTP_PROXY`` or the ``proxy`` extra
says so, go direct when ``NO_PROXY`` names the host, and trust exactly the CAs the connection
names -- the same on the sync and the async path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.integration.network_support import LoopbackProxy, TlsFront
from vexora_provider.exceptions import Permanence, VexoraTransportError
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutState
from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator
from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.server import SimulatorServer
from vexora_provider.triggers.payout_status import PayoutStatusTrigger

pytestmark = pytest.mark.integration

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir")
TRADES = ["NET-1", "NET-2", "NET-3"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the machine has set, each test states its own proxy and CA variables.
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with VexoraSimulator(seed=5) as sim, sim.serve() as server:
        for trade_no in TRADES:
            sim.add_payout(trade_no, "success", amount="10.00")
        yield server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls(server: SimulatorServer, ca: trustme.CA) -> Iterator[str]:
    """The simulator behind TLS: returns the ``https://127.0.0.1:<port>`` origin."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with TlsFront(server.port, context) as front:
        yield f"https://127.0.0.1:{front.port}"


@pytest.fixture
def proxy() -> Iterator[LoopbackProxy]:
    with LoopbackProxy() as running:
        yield running


def connect(monkeypatch: pytest.MonkeyPatch, server: SimulatorServer, origin: str, **extra: Any) -> None:
    conn = json.loads(server.airflow_connection("nigeria", max_attempts=1, read_timeout=5, **extra))
    conn["host"] = f"{origin}/nigeria"
    monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", json.dumps(conn))


# --- the four paths, each returning the states it fetched -----------------------------------------


def via_sync_hook() -> list[str]:
    hook = VexoraHook()
    try:
        return [hook.get_payout_status(t).state.value for t in TRADES]
    finally:
        hook.close()


def via_async_session() -> list[str]:
    async def fetch() -> list[str]:
        async with VexoraHook().async_session(concurrency=2) as session:
            return [r.state.value async for r in session.stream_payout_statuses(TRADES)]  # type: ignore[union-attr]

    return sorted(asyncio.run(fetch()))


def via_trigger() -> list[str]:
    trigger = PayoutStatusTrigger(
        trade_nos=TRADES, vexora_conn_id="vexora_default", end_time=time.time() + 30, poll_interval=0
    )

    async def fire() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(fire())
    assert event["status"] == "success", event
    return [s["state"] for s in event["statuses"]]


def via_operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv(
        "AIRFLOW_CONN_WH_NET", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "wh.db")})
    )
    op = PayoutStatusToSqlOperator(task_id="sync", sql_conn_id="wh_net", trade_nos=TRADES, concurrency=2)
    summary = op.execute({})  # type: ignore[arg-type]
    assert summary["failed"] == 0, summary
    return ["success"] * summary["by_state"].get("success", 0)


PATHS: dict[str, Callable[..., list[str]]] = {
    "sync-hook": lambda tmp_path, monkeypatch: via_sync_hook(),
    "async-session": lambda tmp_path, monkeypatch: via_async_session(),
    "trigger": lambda tmp_path, monkeypatch: via_trigger(),
    "operator": via_operator,
}


@pytest.mark.parametrize("path", list(PATHS))
class TestEveryPathHonoursTheProxy:
    def test_https_proxy_from_the_environment(
        self,
        path: str,
        server: SimulatorServer,
        tls: str,
        ca_file: str,
        proxy: LoopbackProxy,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        connect(monkeypatch, server, tls, ca_bundle=ca_file)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)

        assert PATHS[path](tmp_path, monkeypatch) == ["success"] * 3

        port = tls.rsplit(":", 1)[1]
        assert proxy.tunnels, "no request went through the proxy"
        assert set(proxy.tunnels) == {f"127.0.0.1:{port}"}

    def test_http_proxy_from_the_environment(
        self,
        path: str,
        server: SimulatorServer,
        proxy: LoopbackProxy,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        connect(monkeypatch, server, server.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)

        assert PATHS[path](tmp_path, monkeypatch) == ["success"] * 3

        assert len(proxy.forwarded) >= 3
        assert all(url.startswith(f"{server.url}/nigeria/v1/vexora/") for url in proxy.forwarded)

    def test_proxy_extra_with_credentials(
        self,
        path: str,
        server: SimulatorServer,
        tls: str,
        ca_file: str,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO)
        with LoopbackProxy(credentials=("corp-user", "s3cr:t/pw")) as guarded:
            proxy_url = guarded.url.replace("http://", "http://corp-user:s3cr%3At%2Fpw@")
            connect(monkeypatch, server, tls, ca_bundle=ca_file, proxy=proxy_url)

            assert PATHS[path](tmp_path, monkeypatch) == ["success"] * 3

            assert guarded.tunnels
            assert guarded.refused == 0
        leaked = "s3cr" in caplog.text
        assert not leaked, "the proxy password shows in the log"

    def test_no_proxy_names_the_host(
        self,
        path: str,
        server: SimulatorServer,
        tls: str,
        ca_file: str,
        proxy: LoopbackProxy,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        connect(monkeypatch, server, tls, ca_bundle=ca_file)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")

        assert PATHS[path](tmp_path, monkeypatch) == ["success"] * 3

        assert proxy.requests == 0


def both_paths_fail(hook: VexoraHook) -> list[VexoraTransportError]:
    errors = []
    with pytest.raises(VexoraTransportError) as sync:
        hook.get_payout_status("NET-1")
    errors.append(sync.value)
    with pytest.raises(VexoraTransportError) as async_:
        asyncio.run(hook.aget_payout_status("NET-1"))
    errors.append(async_.value)
    return errors


class TestProxyRefusals:
    def test_missing_proxy_credentials_is_a_clear_permanent_error(
        self, server: SimulatorServer, tls: str, ca_file: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with LoopbackProxy(credentials=("corp-user", "pw")) as guarded:
            connect(monkeypatch, server, tls, ca_bundle=ca_file, proxy=guarded.url)
            for error in both_paths_fail(VexoraHook()):
                assert error.permanence is Permanence.CONNECTION
                assert error.attempts == 1
                assert f"proxy {guarded.url} asks for credentials (HTTP 407)" in str(error)
            assert guarded.refused == 2

    def test_proxy_down_names_the_proxy(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(monkeypatch, server, server.url, proxy="http://127.0.0.1:9")
        for error in both_paths_fail(VexoraHook()):
            assert "connection refused by proxy http://127.0.0.1:9" in str(error)
            assert error.transient


class TestTrustedCertificates:
    def test_ca_bundle_on_both_paths(
        self, server: SimulatorServer, tls: str, ca_file: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(monkeypatch, server, tls, ca_bundle=ca_file)
        hook = VexoraHook()
        assert hook.get_payout_status("NET-1").state is PayoutState.SUCCESS
        assert asyncio.run(hook.aget_payout_status("NET-2")).state is PayoutState.SUCCESS

    def test_ssl_cert_file_on_both_paths(
        self, server: SimulatorServer, tls: str, ca_file: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(monkeypatch, server, tls)
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        hook = VexoraHook()
        assert hook.get_payout_status("NET-1").state is PayoutState.SUCCESS
        assert asyncio.run(hook.aget_payout_status("NET-2")).state is PayoutState.SUCCESS

    @pytest.mark.parametrize("trust", ["default-store", "wrong-ca"])
    def test_untrusted_certificate_is_a_typed_error_naming_the_fix(
        self,
        server: SimulatorServer,
        tls: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        trust: str,
    ) -> None:
        extra: dict[str, Any] = {"max_attempts": 3}
        if trust == "wrong-ca":
            other = tmp_path / "other-ca.pem"
            trustme.CA().cert_pem.write_to_path(str(other))
            extra["ca_bundle"] = str(other)
        connect(monkeypatch, server, tls)
        conn = json.loads(server.airflow_connection("nigeria", **extra))
        conn["host"] = f"{tls}/nigeria"
        monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", json.dumps(conn))

        for error in both_paths_fail(VexoraHook()):
            assert error.permanence is Permanence.CONNECTION
            assert error.attempts == 1  # not retried: a retry cannot change the certificate
            assert "TLS certificate of 127.0.0.1" in str(error)
            assert "is not trusted (certificate verify failed" in str(error)
            assert "set the connection extra ca_bundle" in str(error)
        assert server.sim.calls("NET-1") == 0

    def test_verify_false_works_and_warns(
        self,
        server: SimulatorServer,
        tls: str,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        connect(monkeypatch, server, tls, verify=False)
        hook = VexoraHook()
        assert hook.get_payout_status("NET-1").state is PayoutState.SUCCESS
        assert asyncio.run(hook.aget_payout_status("NET-2")).state is PayoutState.SUCCESS
        assert "TLS certificate verification is OFF" in caplog.text
