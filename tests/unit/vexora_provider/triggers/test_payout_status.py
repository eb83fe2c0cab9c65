"""PayoutStatusTrigger: plain-data kwargs, one client per run, wall-clock deadline, one event."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.serde import deserialize, serialize

from vexora_provider.exceptions import (
    VexoraConfigError,
    VexoraError,
    VexoraHTTPError,
    VexoraTransportError,
)
from vexora_provider.hooks import _retry
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutQueryError, PayoutStatus, StatusMap, parse_payout_status
from vexora_provider.sensors import payout_status as sensor_module
from vexora_provider.sensors.payout_status import PayoutStatusSensor
from vexora_provider.triggers import payout_status as trigger_module
from vexora_provider.triggers.payout_status import (
    TRIGGER_EVENT_STATUSES,
    PayoutStatusTrigger,
    validate_event,
)

CLASSPATH = "vexora_provider.triggers.payout_status.PayoutStatusTrigger"
SUCCESS, PARTIAL, PENDING, FAILED = "0000", "0001", "0015", "00029"
SECRET = "s3cr3t-app-secret-0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def status(trade_no: str, code: str) -> PayoutStatus:
    data = {"tradeNo": trade_no, "status": code, "message": f"msg {code}"}
    return parse_payout_status(data, trade_no=trade_no, status_map=StatusMap(), tz=None)


def transient(trade_no: str = "T1") -> VexoraError:
    return VexoraHTTPError(http_status=503, trade_no=trade_no, transient=True, attempts=4)


class FakeHook:
    """
    Stands in for the hook class: scripted answers per trade (last one repeats), one session each run.

    :param script: trade number → status codes or errors.
    :param open_error: raised when a session opens.
    :param poll_error: raised by the stream instead of answering (whole-poll failure).
    """

    def __init__(
        self,
        script: dict[str, list[str | VexoraError]],
        *,
        open_error: Exception | None = None,
        poll_error: Exception | None = None,
    ) -> None:
        self.script = script
        self.open_error = open_error
        self.poll_error = poll_error
        self.polls: list[list[str]] = []
        self.opened = self.closed = 0

    def __call__(self, vexora_conn_id: str, *, hook_lineage: bool = True) -> FakeHook:
        self.conn_id = vexora_conn_id
        self.hook_lineage = hook_lineage
        return self

    @asynccontextmanager
    async def async_session(self, **_: Any) -> AsyncIterator[FakeHook]:
        if self.open_error:
            raise self.open_error
        self.opened += 1
        try:
            yield self
        finally:
            self.closed += 1

    async def stream_payout_statuses(
        self, trade_nos: Iterable[str], *, concurrency: int | None = None
    ) -> AsyncIterator[PayoutStatus | PayoutQueryError]:
        trade_nos = list(trade_nos)
        self.polls.append(trade_nos)
        if self.poll_error:
            raise self.poll_error
        for trade_no in reversed(trade_nos):
            answers = self.script[trade_no]
            item = answers.pop(0) if len(answers) > 1 else answers[0]
            yield (
                PayoutQueryError(trade_no, item) if isinstance(item, VexoraError) else status(trade_no, item)
            )


class Clock:
    """Wall clock that only moves when the trigger sleeps."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(trigger_module, "time", clock)
    monkeypatch.setattr(trigger_module, "sleep", clock.sleep)
    return clock


def make(**overrides: Any) -> PayoutStatusTrigger:
    kwargs: dict[str, Any] = {
        "trade_nos": ["T1", "T2"],
        "vexora_conn_id": "vexora_default",
        "end_time": 10_000.0,
        "poll_interval": 30.0,
    }
    return PayoutStatusTrigger(**{**kwargs, **overrides})


async def events_of(trigger: PayoutStatusTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def plain(trade_no: str, code: str) -> dict[str, str | None]:
    return status(trade_no, code).to_dict()


class TestPayoutStatusTrigger:
    def test_serialize_round_trips(self) -> None:
        trigger = make(
            exponential_backoff=True,
            max_wait=300.0,
            success_states=["success"],
            fail_on_failed=False,
            max_consecutive_failures=4,
            known_statuses=[plain("T1", SUCCESS)],
            failed_polls=1,
        )
        classpath, kwargs = trigger.serialize()
        assert classpath == CLASSPATH
        assert kwargs == {
            "trade_nos": ["T1", "T2"],
            "vexora_conn_id": "vexora_default",
            "end_time": 10_000.0,
            "poll_interval": 30.0,
            "exponential_backoff": True,
            "max_wait": 300.0,
            "success_states": ["success"],
            "fail_on_failed": False,
            "max_consecutive_failures": 4,
            "known_statuses": [plain("T1", SUCCESS)],
            "failed_polls": 1,
        }
        # The task runner pushes kwargs through airflow.sdk.serde; they must come back unchanged.
        assert deserialize(serialize(kwargs)) == kwargs
        assert PayoutStatusTrigger(**kwargs).serialize() == (classpath, kwargs)
        json.dumps(kwargs)

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"trade_nos": "T1"}, "trade_nos must be a non-empty list"),
            ({"trade_nos": []}, "trade_nos must be a non-empty list"),
            ({"trade_nos": ["T1", None]}, "1 entry is not a trade number"),
            ({"success_states": ["pending"]}, "'pending' is not a terminal state"),
            ({"success_states": ["unknown"]}, "'unknown' is not a terminal state"),
            ({"poll_interval": -1}, "poll_interval must not be negative"),
            ({"max_consecutive_failures": 0}, "max_consecutive_failures must be at least 1"),
        ],
        ids=[
            "str",
            "empty",
            "not-a-trade-number",
            "pending",
            "unknown",
            "negative-interval",
            "zero-threshold",
        ],
    )
    def test_rejects_bad_kwargs(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            make(**overrides)

    def test_trade_nos_follow_the_shared_rule(self) -> None:
        assert make(trade_nos=[" T1", "T2", "T1", b"T3"]).trade_nos == ["T1", "T2", "T3"]

    @pytest.mark.anyio
    async def test_success_event_in_input_order_skipping_known(self, clock: Clock, monkeypatch: Any) -> None:
        hook = FakeHook({"T2": [PENDING, SUCCESS], "T3": [PENDING, PENDING, PARTIAL]})
        monkeypatch.setattr(trigger_module, "VexoraHook", hook)
        trigger = make(trade_nos=["T1", "T2", "T3"], known_statuses=[plain("T1", SUCCESS)])
        assert await events_of(trigger) == [
            {
                "status": "success",
                "message": "all 3 payouts are final",
                "statuses": [plain("T1", SUCCESS), plain("T2", SUCCESS), plain("T3", PARTIAL)],
                "retryable": True,
            }
        ]
        assert hook.hook_lineage is False  # the triggerer runs no task: nothing to report
        assert hook.polls == [["T2", "T3"], ["T2", "T3"], ["T3"]]
        assert clock.sleeps == [30.0, 30.0, 30.0]
        assert hook.conn_id == "vexora_default"
        assert (hook.opened, hook.closed) == (1, 1)

    @pytest.mark.anyio
    async def test_keeps_waiting_and_closes_the_client_when_cancelled(self, monkeypatch: Any) -> None:
        hook = FakeHook({"T1": [PENDING], "T2": [PENDING]})
        monkeypatch.setattr(trigger_module, "VexoraHook", hook)
        polled = asyncio.Event()

        async def sleep(seconds: float) -> None:
            if hook.polls:
                polled.set()
                await asyncio.Event().wait()  # the next wait never ends by itself

        monkeypatch.setattr(trigger_module, "sleep", sleep)
        task = asyncio.create_task(make(end_time=time.time() + 3600).run().__anext__())
        waiting = asyncio.create_task(polled.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        assert not task.done()
        assert hook.polls == [["T1", "T2"]]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (hook.opened, hook.closed) == (1, 1)

    @pytest.mark.anyio
    async def test_exponential_backoff_capped_by_max_wait(self, clock: Clock, monkeypatch: Any) -> None:
        hook = FakeHook({"T1": [PENDING, PENDING, PENDING, PENDING, SUCCESS]})
        monkeypatch.setattr(trigger_module, "VexoraHook", hook)
        trigger = make(trade_nos=["T1"], poll_interval=10.0, exponential_backoff=True, max_wait=35.0)
        assert (await events_of(trigger))[0]["status"] == "success"
        assert clock.sleeps == [10.0, 20.0, 35.0, 35.0, 35.0]

    @pytest.mark.anyio
    async def test_timeout_after_a_final_check(self, clock: Clock, monkeypatch: Any) -> None:
        hook = FakeHook({"T1": [SUCCESS], "T2": [PENDING]})
        monkeypatch.setattr(trigger_module, "VexoraHook", hook)
        events = await events_of(make(end_time=1_050.0))
        # Slept 30 s, then only the 20 s left: the last poll happens at the deadline, not after.
        assert clock.sleeps == [30.0, 20.0]
        assert len(hook.polls) == 2
        assert events == [
            {
                "status": "timeout",
                "message": "deadline 1970-01-01T00:17:30+00:00 passed; 1 of 2 payouts not final yet: 'T2'",
                "statuses": [plain("T1", SUCCESS), plain("T2", PENDING)],
                "retryable": True,
            }
        ]

    @pytest.mark.anyio
    async def test_final_check_wins_over_timeout(self, clock: Clock, monkeypatch: Any) -> None:
        monkeypatch.setattr(trigger_module, "VexoraHook", FakeHook({"T1": [SUCCESS], "T2": [SUCCESS]}))
        events = await events_of(make(end_time=900.0))  # deadline already passed at start
        assert clock.sleeps == [0.0]
        assert events[0]["status"] == "success"

    @pytest.mark.anyio
    async def test_deadline_is_wall_clock(self, clock: Clock, monkeypatch: Any) -> None:
        # A deadline made with time.monotonic() on a worker would be in the distant past here.
        monkeypatch.setattr(
            trigger_module, "VexoraHook", FakeHook({"T1": [PENDING, SUCCESS], "T2": [SUCCESS]})
        )
        clock.now = 1_700_000_000.0
        assert (await events_of(make(end_time=1_700_000_600.0)))[0]["status"] == "success"

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("code", "state"), [(FAILED, "failed"), ("0099", "unknown")], ids=["failed", "unknown"]
    )
    async def test_failed_event(self, code: str, state: str, clock: Clock, monkeypatch: Any) -> None:
        monkeypatch.setattr(trigger_module, "VexoraHook", FakeHook({"T1": [PENDING], "T2": [PENDING, code]}))
        (event,) = await events_of(make())
        assert event["status"] == "failed"
        assert event["retryable"] is False
        assert event["message"].startswith(f"trade 'T2': payout {state} (status {code}: msg {code})")

    @pytest.mark.anyio
    async def test_error_after_consecutive_failed_polls_counting_the_sensors(
        self, clock: Clock, monkeypatch: Any
    ) -> None:
        hook = FakeHook({"T1": [transient()], "T2": [PENDING]})
        monkeypatch.setattr(trigger_module, "VexoraHook", hook)
        (event,) = await events_of(make(failed_polls=1))
        assert len(hook.polls) == 2  # the sensor's first poke failed too: 3 in a row
        assert event == {
            "status": "error",
            "message": "trade 'T1': HTTP 503 from the gateway (3 polls in a row)",
            "statuses": [plain("T2", PENDING)],
            "retryable": True,
        }

    @pytest.mark.anyio
    async def test_whole_poll_failure_counts_too(self, clock: Clock, monkeypatch: Any) -> None:
        error = VexoraTransportError("connection refused", transient=True)
        hook = FakeHook({}, poll_error=error)
        monkeypatch.setattr(trigger_module, "VexoraHook", hook)
        (event,) = await events_of(make(max_consecutive_failures=2))
        assert len(hook.polls) == 2
        assert event["status"] == "error"
        assert event["message"] == "connection refused (2 polls in a row)"

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("kwargs", "retryable", "message"),
        [
            ({"open_error": VexoraConfigError("connection 'x' has no login")}, False, "has no login"),
            ({"open_error": RuntimeError("boom")}, True, "RuntimeError: boom"),
            ({"poll_error": KeyError("bug")}, True, "KeyError: 'bug'"),
        ],
        ids=["config", "unexpected-open", "unexpected-poll"],
    )
    async def test_error_event_for_what_polling_cannot_fix(
        self, kwargs: dict[str, Any], retryable: bool, message: str, clock: Clock, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(trigger_module, "VexoraHook", FakeHook({}, **kwargs))
        (event,) = await events_of(make())
        assert event["status"] == "error"
        assert event["retryable"] is retryable
        assert message in event["message"]

    @pytest.mark.parametrize("status", sorted(TRIGGER_EVENT_STATUSES))
    def test_validate_event_accepts_the_vocabulary(self, status: str) -> None:
        event = {"status": status, "message": "", "statuses": [], "retryable": True}
        assert validate_event(event) is event

    @pytest.mark.parametrize("event", [None, [], {"status": "cancelled", "message": "", "statuses": []}])
    def test_validate_event_refuses_anything_else(self, event: object) -> None:
        with pytest.raises(ValueError, match="event"):
            validate_event(event)


class TestSecretNeverLeaves:
    """The real hook signs with the secret; no event, XCom or error message may carry it."""

    @pytest.fixture(autouse=True)
    def connection(self, monkeypatch: pytest.MonkeyPatch) -> None:
        conn = {"conn_type": "vexora", "host": "http://127.0.0.1:9/nigeria", "login": "3060414594"}
        monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", json.dumps({**conn, "password": SECRET}))

        async def no_wait(_: float) -> None:
            pass

        monkeypatch.setattr(_retry, "sleep", lambda _: None)
        monkeypatch.setattr(_retry, "asleep", no_wait)
        monkeypatch.setattr(trigger_module, "sleep", no_wait)

    @staticmethod
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert len(body["sign"]) == 32  # signed with the secret, so the secret was in play
        trade_no = body["tradeNo"]
        if trade_no == "T-ERR":
            return httpx.Response(500, text=f"upstream said {SECRET}")
        code = {"T-OK": SUCCESS, "T-FAIL": FAILED}[trade_no]
        data = {"tradeNo": trade_no, "status": code, "message": "done"}
        return httpx.Response(200, json={"code": "0000", "msg": "success", "success": True, "data": data})

    @pytest.mark.parametrize(
        ("trade_nos", "status"),
        [(["T-OK"], "success"), (["T-OK", "T-FAIL"], "failed"), (["T-OK", "T-ERR"], "error")],
    )
    def test_events_carry_no_secret(
        self, trade_nos: list[str], status: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hook = partial(VexoraHook, async_transport=httpx.MockTransport(self.handler))
        monkeypatch.setattr(trigger_module, "VexoraHook", hook)
        trigger = make(trade_nos=trade_nos, end_time=time.time() + 3600, max_consecutive_failures=1)
        (event,) = asyncio.run(events_of(trigger))
        assert event["status"] == status
        assert [s["trade_no"] for s in event["statuses"]] == trade_nos[: len(event["statuses"])]
        leaked = SECRET in json.dumps(event)
        assert not leaked, "the trigger event carries the app secret"  # never print it

    @pytest.mark.parametrize(
        ("trade_no", "raises"),
        [("T-OK", None), (["T-OK"], None), ("T-FAIL", AirflowFailException), ("T-ERR", AirflowException)],
    )
    def test_xcom_and_errors_carry_no_secret(
        self, trade_no: Any, raises: type[AirflowException] | None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hook = partial(VexoraHook, transport=httpx.MockTransport(self.handler))
        monkeypatch.setattr(sensor_module, "VexoraHook", hook)
        sensor = PayoutStatusSensor(
            task_id="wait", trade_nos=trade_no, poke_interval=0, max_consecutive_failures=1
        )
        result: object
        if raises is None:
            result = sensor.execute({})  # type: ignore[arg-type]
        else:
            with pytest.raises(raises) as raised:
                sensor.execute({})  # type: ignore[arg-type]
            assert type(raised.value) is raises
            result = str(raised.value)
        assert "T-" in json.dumps(result)
        leaked = SECRET in json.dumps(result)
        assert not leaked, "the XCom or the error carries the app secret"  # never print it
