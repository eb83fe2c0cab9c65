"""The attempt driver driven by hand: no sender, no loop, no clock -- only its steps."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import Permanence, VexoraAuthError, VexoraHTTPError, VexoraTransportError
from vexora_provider.hooks._driver import CHECK_CREDENTIALS, Credentials, Driver, Pause, RetryRule, Send, Wait
from vexora_provider.hooks._protocol import (
    BALANCE_PATH,
    PAYOUT_STATUS_PATH,
    Answer,
    FetchStats,
    TransportFailure,
)
from vexora_provider.models import PayoutStatus

OK = Answer(200, b'{"code":"0000","msg":"success","data":{"tradeNo":"T1","status":"0015"}}')
REFUSED = Answer(200, b'{"code":"8000","msg":"sign error"}')


@pytest.fixture
def driver() -> Driver:
    config = VexoraConfig.from_connection_fields(
        host="https://api.vexora.example/nigeria", login="3060414594", password="s" * 32, extra=None
    )
    return Driver(config=config, stats=FetchStats(), proxy=None)


def finish(steps: Generator[Any, Answer | None, Any], answer: Answer) -> Any:
    with pytest.raises(StopIteration) as done:
        steps.send(answer)
    return done.value.value


class TestDriver:
    def test_a_retried_call_step_by_step(self, driver: Driver) -> None:
        steps = driver.attempts(driver.status_call("T1"))
        first = next(steps)
        assert isinstance(first, Send)
        assert first.endpoint == PAYOUT_STATUS_PATH
        assert steps.send(Answer(429, b"", "5")) == Pause(5.0)
        assert next(steps) == Wait(5.0)
        again = next(steps)
        assert isinstance(again, Send)
        assert isinstance(finish(steps, OK), PayoutStatus)
        stats = driver.stats
        assert (stats.requested, stats.succeeded, stats.retries, stats.rate_limited) == (1, 1, 1, 1)
        assert driver.credentials is Credentials.GOOD

    def test_a_transport_failure_is_thrown_in(self, driver: Driver) -> None:
        steps = driver.attempts(driver.balance_call(rule=RetryRule(max_attempts=1)))
        next(steps)
        with pytest.raises(VexoraTransportError) as raised:
            steps.throw(TransportFailure("reset", "peer reset"))
        assert raised.value.reason == "connection reset by api.vexora.example"
        assert raised.value.attempts == 1
        assert driver.stats.failed == 1

    def test_refused_credentials_are_found_out_once(self, driver: Driver) -> None:
        steps = driver.attempts(driver.status_call("T1"))
        next(steps)
        assert steps.send(REFUSED) is CHECK_CREDENTIALS
        # What a runner does for that step: the balance call, through the same driver.
        check = driver.begin_check()
        assert check is not None
        assert driver.begin_check() is None  # one check at a time, and only one
        balance = driver.attempts(check)
        assert isinstance(step := next(balance), Send)
        assert step.endpoint == BALANCE_PATH
        with pytest.raises(VexoraAuthError):
            balance.send(REFUSED)
        driver.end_check()
        with pytest.raises(VexoraAuthError) as raised:
            next(steps)
        assert (raised.value.trade_no, raised.value.attempts) == ("T1", 1)
        assert raised.value.permanence is Permanence.CONNECTION
        with pytest.raises(VexoraAuthError):
            next(driver.attempts(driver.status_call("T2")))  # no Send at all
        assert driver.stats.requested == driver.stats.failed == 2  # the check is not counted

    def test_retry_rule_is_per_call(self, driver: Driver) -> None:
        never = RetryRule(max_attempts=5, retry_on=lambda error: False)
        steps = driver.attempts(driver.balance_call(rule=never))
        next(steps)
        with pytest.raises(VexoraHTTPError) as raised:
            steps.send(Answer(503, b""))
        assert raised.value.transient
        assert raised.value.attempts == 1
