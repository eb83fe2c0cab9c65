from __future__ import annotations

from typing import Any

import pytest
from vexora_hook_support import BAD_TRADE_NOS

from vexora_provider._urls import ProxyURL
from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import (
    Permanence,
    VexoraAPIError,
    VexoraError,
    VexoraHTTPError,
    VexoraInvalidTradeNoError,
    VexoraResponseFormatError,
    VexoraTransportError,
)
from vexora_provider.hooks._protocol import Answer, TransportFailure, read_envelope, transport_error
from vexora_provider.hooks.vexora import FetchStats, validate_trade_no


class TestValidateTradeNo:
    @pytest.mark.parametrize("trade_no", ["T1", "x" * 32, "ÄÖ-üñ_中文", "a b"])
    def test_accepts(self, trade_no: str) -> None:
        assert validate_trade_no(trade_no) == trade_no

    @pytest.mark.parametrize("trade_no", BAD_TRADE_NOS)
    def test_rejects(self, trade_no: Any) -> None:
        with pytest.raises(VexoraInvalidTradeNoError) as exc:
            validate_trade_no(trade_no)
        assert exc.value.attempts == 0
        assert not exc.value.transient
        assert isinstance(exc.value, ValueError)


class TestFetchStats:
    def test_as_dict_is_plain_numbers(self) -> None:
        stats = FetchStats(requested=3, succeeded=2, failed=1)
        data = stats.as_dict()
        assert data["requested"] == 3
        assert data["failed"] == 1
        assert "elapsed_s" in data
        assert all(type(v) in (int, float) for v in data.values())


CONFIG = VexoraConfig.from_connection_fields(
    host="https://api.vexora.example/nigeria", login="3060414594", password="s" * 32, extra=None
)
PROXY = ProxyURL("http://proxy.corp:3128", "svc", "hunter2")

# kind -> (reason without a proxy, reason through one, permanence)
TRANSPORT_REASONS: dict[str, tuple[str, str, Permanence]] = {
    "connect_timeout": (
        "connect timeout after 5s to api.vexora.example",
        "connect timeout after 5s to proxy http://proxy.corp:3128",
        Permanence.TRANSIENT,
    ),
    "read_timeout": (
        "read timeout after 10s from api.vexora.example",
        "read timeout after 10s from api.vexora.example via proxy http://proxy.corp:3128",
        Permanence.TRANSIENT,
    ),
    "refused": (
        "connection refused by api.vexora.example",
        "connection refused by proxy http://proxy.corp:3128",
        Permanence.TRANSIENT,
    ),
    "reset": (
        "connection reset by api.vexora.example",
        "connection reset by api.vexora.example via proxy http://proxy.corp:3128",
        Permanence.TRANSIENT,
    ),
    "tls_verify": (
        "TLS certificate of api.vexora.example is not trusted (detail)",
        "TLS certificate of api.vexora.example is not trusted (detail)",
        Permanence.CONNECTION,
    ),
    "unsupported": (
        "cannot send to https://api.vexora.example/nigeria: detail",
        "cannot send to https://api.vexora.example/nigeria: detail",
        Permanence.CONNECTION,
    ),
}


class TestTransportError:
    @pytest.mark.parametrize("kind", list(TRANSPORT_REASONS))
    @pytest.mark.parametrize("proxied", [False, True])
    def test_reason_and_permanence(self, kind: str, proxied: bool) -> None:
        direct, via_proxy, permanence = TRANSPORT_REASONS[kind]
        error = transport_error(TransportFailure(kind, "detail"), CONFIG, PROXY if proxied else None, "T1")
        assert isinstance(error, VexoraTransportError)
        assert error.reason.startswith(via_proxy if proxied else direct)
        assert error.permanence is permanence
        assert error.kind == kind
        assert error.trade_no == "T1"
        # Never ``assert password not in str(error)``: a failure would print the password.
        leaked = "hunter2" in str(error) or "svc" in str(error)
        assert not leaked, "the proxy's credentials are in the error"

    @pytest.mark.parametrize(
        ("status", "words", "permanence"),
        [
            (407, "asks for credentials (HTTP 407)", Permanence.CONNECTION),
            (403, "refused the tunnel to api.vexora.example (HTTP 403)", Permanence.CONNECTION),
            (502, "could not reach api.vexora.example (HTTP 502)", Permanence.TRANSIENT),
        ],
    )
    def test_proxy_refusals(self, status: int, words: str, permanence: Permanence) -> None:
        error = transport_error(TransportFailure("proxy", "x", status=status), CONFIG, PROXY, None)
        assert f"proxy http://proxy.corp:3128 {words}" in str(error)
        assert error.permanence is permanence


class TestReadEnvelope:
    @pytest.mark.parametrize(
        ("answer", "error", "permanence"),
        [
            (Answer(503, b""), VexoraHTTPError, Permanence.TRANSIENT),
            (Answer(404, b""), VexoraHTTPError, Permanence.CALL),
            (Answer(200, b"<html>"), VexoraResponseFormatError, Permanence.TRANSIENT),
            (Answer(200, b'{"code":"5000","msg":"x"}'), VexoraAPIError, Permanence.TRANSIENT),
            (Answer(200, b'{"code":"8000","msg":"x"}'), VexoraAPIError, Permanence.TRANSIENT),
            (Answer(200, b'{"code":"7777","msg":"x"}'), VexoraAPIError, Permanence.CALL),
        ],
    )
    def test_permanence_is_decided_here(
        self, answer: Answer, error: type[VexoraError], permanence: Permanence
    ) -> None:
        with pytest.raises(error) as raised:
            read_envelope(answer, trade_no="T1", query=True)
        assert raised.value.permanence is permanence

    def test_retry_after_is_read_from_the_answer(self) -> None:
        with pytest.raises(VexoraHTTPError) as raised:
            read_envelope(Answer(429, b"", "12"), trade_no=None, query=True)
        assert raised.value.retry_after == 12.0
