from __future__ import annotations

import pickle

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from vexora_provider.exceptions import (
    Permanence,
    VexoraAPIError,
    VexoraAuthError,
    VexoraConfigError,
    VexoraError,
    VexoraHTTPError,
    VexoraInvalidTradeNoError,
    VexoraPayoutFailedError,
    VexoraResponseFormatError,
    VexoraTransportError,
)

EXAMPLES: list[VexoraError] = [
    VexoraError("plain", trade_no="T1"),
    VexoraConfigError("no login"),
    VexoraAuthError("refused", code="8000"),
    VexoraInvalidTradeNoError("too long", trade_no="x" * 33),
    VexoraAPIError(code="5000", msg="system exception", trade_no="T1", transient=True, attempts=4),
    VexoraHTTPError(http_status=429, retry_after=7.0, trade_no="T1", transient=True, attempts=2),
    VexoraTransportError("read timeout after 10s", trade_no="T1", transient=True, attempts=4),
    VexoraResponseFormatError("data.status is missing", trade_no="T1"),
    VexoraPayoutFailedError(payout_code="00029", state="failed", payout_message="REJECTED", trade_no="T1"),
]


class TestVexoraError:
    @pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
    def test_is_airflow_exception(self, error: VexoraError) -> None:
        assert isinstance(error, AirflowException)
        assert isinstance(error, VexoraError)

    @pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
    def test_pickle_keeps_fields(self, error: VexoraError) -> None:
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert clone.__dict__ == error.__dict__

    def test_defaults(self) -> None:
        error = VexoraError("x")
        assert (error.trade_no, error.transient, error.attempts) == (None, False, 0)
        assert str(error) == "x"

    def test_message_names_trade(self) -> None:
        assert str(VexoraError("boom", trade_no="T1")) == "trade 'T1': boom"

    @pytest.mark.parametrize(
        ("error", "permanence"),
        [
            (VexoraError("x"), Permanence.CALL),
            (VexoraConfigError("x"), Permanence.CONNECTION),
            (VexoraAuthError("x", code="8000"), Permanence.CONNECTION),
            (VexoraInvalidTradeNoError("x"), Permanence.TRADE),
            (VexoraHTTPError(http_status=404), Permanence.CALL),
            (VexoraHTTPError(http_status=503, transient=True), Permanence.TRANSIENT),
            (VexoraTransportError("x", permanence=Permanence.CONNECTION), Permanence.CONNECTION),
        ],
    )
    def test_permanence_is_decided_on_the_error(self, error: VexoraError, permanence: Permanence) -> None:
        assert error.permanence is permanence
        assert error.transient is (permanence is Permanence.TRANSIENT)
        assert error.permanence.is_permanent is (permanence in (Permanence.TRADE, Permanence.CONNECTION))

    def test_contradicting_facts_are_refused(self) -> None:
        with pytest.raises(ValueError, match="contradicts"):
            VexoraError("x", transient=True, permanence=Permanence.CALL)

    @pytest.mark.parametrize(
        ("error", "brief"),
        [
            (VexoraHTTPError(http_status=503), "HTTP 503"),
            (VexoraAPIError(code="5000", msg="x"), "code 5000"),
            (VexoraTransportError("read timeout after 10s"), "read timeout after 10s"),
            (VexoraResponseFormatError("x"), "malformed response"),
            (VexoraConfigError("x"), "VexoraConfigError"),
        ],
    )
    def test_brief_names_the_cause(self, error: VexoraError, brief: str) -> None:
        assert error.brief == brief


class TestVexoraAPIError:
    def test_fields_and_message(self) -> None:
        error = EXAMPLES[4]
        assert isinstance(error, VexoraAPIError)
        assert (error.code, error.msg, error.transient, error.attempts) == (
            "5000",
            "system exception",
            True,
            4,
        )
        assert str(error) == "trade 'T1': gateway answered code 5000 (system exception)"

    def test_empty_msg(self) -> None:
        assert "(no msg)" in str(VexoraAPIError(code="7777", msg=""))


class TestVexoraHTTPError:
    def test_fields(self) -> None:
        error = EXAMPLES[5]
        assert isinstance(error, VexoraHTTPError)
        assert (error.http_status, error.retry_after) == (429, 7.0)
        assert "HTTP 429" in str(error)


class TestVexoraTransportError:
    def test_reason(self) -> None:
        error = EXAMPLES[6]
        assert isinstance(error, VexoraTransportError)
        assert error.reason == "read timeout after 10s"


class TestVexoraResponseFormatError:
    def test_reason(self) -> None:
        error = EXAMPLES[7]
        assert isinstance(error, VexoraResponseFormatError)
        assert str(error) == "trade 'T1': malformed response: data.status is missing"


class TestVexoraAuthError:
    def test_code(self) -> None:
        assert EXAMPLES[2].code == "8000"  # type: ignore[attr-defined]

    def test_fails_a_task_without_retries(self) -> None:
        assert isinstance(EXAMPLES[2], AirflowFailException)


class TestVexoraInvalidTradeNoError:
    def test_is_value_error(self) -> None:
        assert isinstance(EXAMPLES[3], ValueError)


class TestVexoraPayoutFailedError:
    def test_fields(self) -> None:
        error = EXAMPLES[8]
        assert isinstance(error, VexoraPayoutFailedError)
        assert (error.payout_code, error.state, error.payout_message) == ("00029", "failed", "REJECTED")
        assert str(error) == "trade 'T1': payout failed (status 00029: REJECTED)"
