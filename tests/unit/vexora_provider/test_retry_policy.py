from __future__ import annotations

import pytest
from airflow.sdk import RetryAction
from airflow.sdk.exceptions import AirflowException

from vexora_provider.exceptions import (
    Permanence,
    VexoraAuthError,
    VexoraBudgetError,
    VexoraConfigError,
    VexoraError,
    VexoraHTTPError,
    VexoraInvalidPayoutError,
    VexoraInvalidTradeNoError,
    VexoraPayoutUnknownError,
    VexoraTransportError,
)
from vexora_provider.retry_policy import VEXORA_RETRY_POLICY, VexoraRetryPolicy


class TestVexoraRetryPolicy:
    @pytest.mark.parametrize(
        "error",
        [
            VexoraConfigError("no login"),
            VexoraAuthError("refused", code="8000"),
            VexoraInvalidTradeNoError("too long", trade_no="x" * 33),
            VexoraInvalidPayoutError("amount 'x' is not a plain decimal", trade_no="T1"),
            VexoraTransportError(
                "TLS certificate not trusted", kind="tls_verify", permanence=Permanence.CONNECTION
            ),
            VexoraBudgetError("budget_storage refused the password"),
        ],
        ids=lambda e: type(e).__name__,
    )
    def test_fails_at_once_on_what_no_retry_can_fix(self, error: VexoraError) -> None:
        decision = VEXORA_RETRY_POLICY.evaluate(error, try_number=1, max_tries=4)
        assert decision.action is RetryAction.FAIL
        assert type(error).__name__ in (decision.reason or "")

    @pytest.mark.parametrize(
        "error",
        [
            VexoraHTTPError(http_status=503, transient=True),
            VexoraHTTPError(http_status=404),
            VexoraPayoutUnknownError("create got HTTP 502, the query failed"),
            AirflowException("a failed poll"),
            VexoraBudgetError("budget_storage did not answer", outage=True),
            RuntimeError("anything else"),
        ],
        ids=lambda e: type(e).__name__,
    )
    def test_leaves_everything_else_to_the_task_retries(self, error: BaseException) -> None:
        assert VEXORA_RETRY_POLICY.evaluate(error, try_number=1, max_tries=4).action is RetryAction.DEFAULT

    def test_round_trips_through_its_serialized_form(self) -> None:
        data = VEXORA_RETRY_POLICY.serialize()
        assert data == {"__type": "VexoraRetryPolicy"}
        assert VexoraRetryPolicy.deserialize(data) == VEXORA_RETRY_POLICY
        assert repr(VEXORA_RETRY_POLICY) == "VexoraRetryPolicy()"
