"""PayoutStatusSensor and its trigger against the simulator on a real loopback socket.

Everything is real below the sensor: the connection comes from ``AIRFLOW_CONN_VEXORA_DEFAULT``,
the sync hook (poke mode) and the async session over aiohttp (trigger) sign and send real HTTP
requests, and the simulator scripts lifecycles and faults. Each scenario runs in poke mode and
in deferrable mode against fresh, identically scripted simulator state, and both must agree.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    TaskDeferred,
)
from airflow.sdk.serde import deserialize, serialize

from vexora_provider.exceptions import VexoraAuthError
from vexora_provider.sensors.payout_status import PayoutStatusSensor
from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.server import SimulatorServer
from vexora_provider.triggers.payout_status import PayoutStatusTrigger

pytestmark = pytest.mark.integration

Script = Callable[[VexoraSimulator], None]
Outcome = tuple[Any, Any]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    with VexoraSimulator(seed=11) as sim, sim.serve() as server:
        yield server


def connect(server: SimulatorServer, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    # One try per poll: the hook's own retries are its business; here every fault is a failed poll.
    extra = {"max_attempts": 1, "read_timeout": 5, **extra}
    monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", server.airflow_connection("nigeria", **extra))


async def collect(trigger: PayoutStatusTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def run(mode: str, events: list[dict[str, Any]] | None = None, **kwargs: Any) -> Outcome:
    """Run a sensor the way Airflow would in ``mode``; return ("returned", xcom) or the error."""
    make = lambda: PayoutStatusSensor(  # noqa: E731
        task_id="wait", poke_interval=0.05, deferrable=mode == "deferrable", **kwargs
    )
    try:
        return ("returned", make().execute({}))  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        trigger, method = deferred.trigger, deferred.method_name
    except AirflowException as error:
        return (type(error), str(error))
    _, trigger_kwargs = trigger.serialize()
    rebuilt = PayoutStatusTrigger(**deserialize(serialize(trigger_kwargs)))
    fired = asyncio.run(collect(rebuilt))
    assert len(fired) == 1
    if events is not None:
        events.extend(fired)
    try:
        return ("returned", make().resume_execution(method, {"event": fired[0]}, {}))  # type: ignore[arg-type]
    except AirflowException as error:
        return (type(error), str(error))


def both_modes(
    server: SimulatorServer, script: Script, events: list[dict[str, Any]] | None = None, **kwargs: Any
) -> Outcome:
    """Script the simulator, run poke mode; reset, script again, run deferrable; they must agree."""
    outcomes = []
    for mode in ("poke", "deferrable"):
        server.sim.reset(seed=11)
        script(server.sim)
        outcomes.append(run(mode, events, **kwargs))
    poked, deferred = outcomes
    if poked[0] is AirflowSensorTimeout:
        assert deferred[0] is AirflowSensorTimeout
    else:
        assert comparable(poked) == comparable(deferred)
    return poked


def comparable(outcome: Outcome) -> Outcome:
    """The outcome with ``success_time`` reduced to whether it is set: it is when each run settled."""

    def settle(status: Any) -> Any:
        if isinstance(status, dict) and "success_time" in status:
            return {**status, "success_time": status["success_time"] is not None}
        return status

    kind, value = outcome
    return (kind, [settle(s) for s in value] if isinstance(value, list) else settle(value))


class TestPayoutStatusSensorAgainstSimulator:
    def test_waits_until_every_payout_is_final(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(server, monkeypatch)

        def script(sim: VexoraSimulator) -> None:
            sim.add_payout("ORDER-1", "success", pending_polls=3, amount="300.00")
            sim.add_payout("ORDER-2", "partial", pending_polls=1, amount="80.00")
            sim.add_payout("ORDER-3", "success", amount="12.34")

        kind, statuses = both_modes(server, script, trade_nos=["ORDER-2", "ORDER-1", "ORDER-3"])
        assert kind == "returned"
        assert [s["trade_no"] for s in statuses] == ["ORDER-2", "ORDER-1", "ORDER-3"]
        assert [s["state"] for s in statuses] == ["partial", "success", "success"]
        assert statuses[1]["amount"] == "300.00"
        assert statuses[1]["success_time"].endswith("+01:00")  # Africa/Lagos, ISO 8601
        assert server.sim.calls("ORDER-1") == 4  # 3 pending answers, then final
        assert server.sim.calls("ORDER-3") == 1  # final at once: never asked again
        json.dumps(statuses)

    def test_single_trade_number_gives_one_dict(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(server, monkeypatch)
        kind, status = both_modes(
            server, lambda sim: sim.add_payout("ORDER-1", "success", pending_polls=1), trade_nos="ORDER-1"
        )
        assert kind == "returned"
        assert status["trade_no"] == "ORDER-1"
        assert status["status_code"] == "0000"

    def test_failed_payout_fails_the_task(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(server, monkeypatch)

        def script(sim: VexoraSimulator) -> None:
            sim.add_payout("ORDER-1", "success", pending_polls=5)
            sim.add_payout("ORDER-2", "failed", pending_polls=1, message="REJECTED_TRANSACTION")

        kind, message = both_modes(server, script, trade_nos=["ORDER-1", "ORDER-2"])
        assert kind is AirflowFailException
        assert message == "trade 'ORDER-2': payout failed (status 00029: REJECTED_TRANSACTION)"

    def test_failed_payout_reported_when_policy_allows(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(server, monkeypatch)
        kind, status = both_modes(
            server,
            lambda sim: sim.add_payout("ORDER-2", "failed", pending_polls=1),
            trade_nos="ORDER-2",
            fail_on_failed=False,
        )
        assert (kind, status["state"]) == ("returned", "failed")

    def test_unknown_code_fails_loudly_unless_mapped(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def script(sim: VexoraSimulator) -> None:
            sim.add_payout("ORDER-9", "0042", pending_polls=1)

        connect(server, monkeypatch)
        kind, message = both_modes(server, script, trade_nos="ORDER-9")
        assert kind is AirflowFailException
        assert "0042" in message
        assert "status_map" in message

        connect(server, monkeypatch, status_map={"0042": "success"})
        kind, status = both_modes(server, script, trade_nos="ORDER-9")
        assert (kind, status["state"], status["status_code"]) == ("returned", "success", "0042")

    @pytest.mark.parametrize("fault", ["http_503", "code_8000", "malformed_json", "reset"])
    def test_failed_polls_below_the_threshold_do_not_fail(
        self, fault: str, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(server, monkeypatch)

        def script(sim: VexoraSimulator) -> None:
            sim.add_payout("ORDER-1", "success", pending_polls=1)
            sim.add_fault(fault, "queryPayOutResult", trade_no="ORDER-1", nth=(2, 3))

        kind, status = both_modes(server, script, trade_nos="ORDER-1")
        assert (kind, status["state"]) == ("returned", "success")

    def test_persistent_failure_fails_after_the_threshold(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(server, monkeypatch)

        def script(sim: VexoraSimulator) -> None:
            sim.add_payout("ORDER-1", "success", pending_polls=1)
            sim.add_fault("http_503", "queryPayOutResult", trade_no="ORDER-1")

        kind, message = both_modes(server, script, trade_nos="ORDER-1")
        assert kind is AirflowException
        assert message == "trade 'ORDER-1': HTTP 503 from the gateway (3 polls in a row)"

    def test_timeout(self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
        connect(server, monkeypatch)
        outcome = both_modes(
            server, lambda sim: sim.add_payout("ORDER-1", "pending"), trade_nos=["ORDER-1"], timeout=0.3
        )
        assert outcome[0] is AirflowSensorTimeout

    def test_secret_never_in_xcom_events_or_errors(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connect(server, monkeypatch)
        secret = server.sim.secret
        events: list[dict[str, Any]] = []
        outcomes = []
        for final in ("success", "failed", "unknown"):

            def script(sim: VexoraSimulator, final: str = final) -> None:
                sim.add_payout("ORDER-1", final, pending_polls=1)
                sim.add_fault("http_500", "queryPayOutResult", trade_no="ORDER-1", nth=(2,))

            outcomes.append(both_modes(server, script, events, trade_nos="ORDER-1"))
        assert len(events) == 3
        text = json.dumps([events, [(str(kind), value) for kind, value in outcomes]])
        assert "ORDER-1" in text
        leaked = secret in text
        assert not leaked, "an XCom, event or error shows the app secret"  # never print it


def wrong_secret(server: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(server.airflow_connection("nigeria", max_attempts=4, read_timeout=5))
    conn["password"] = "not-the-secret-" + "x" * 17
    monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", json.dumps(conn))


def sent(server: SimulatorServer) -> tuple[int, int]:
    requests = server.sim.stats()["requests"]
    return requests.get("queryPayOutResult", 0), requests.get("queryBalance", 0)


class TestWrongCredentials:
    @pytest.mark.parametrize("mode", ["poke", "deferrable"])
    def test_sensor_fails_at_once_with_an_auth_error(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch, mode: str
    ) -> None:
        wrong_secret(server, monkeypatch)
        for trade_no in ("A", "B", "C"):
            server.sim.add_payout(trade_no, "success", pending_polls=2)

        kind, message = run(mode, trade_nos=["A", "B", "C"], max_consecutive_failures=5)

        assert kind is VexoraAuthError
        assert "merchant number (login)" in message
        assert "app secret (password)" in message
        # Not 4 tries x 5 polls x 3 trades: one status query, one queryBalance check.
        assert sent(server) == (1, 1)

    def test_trigger_reports_refused_credentials_once_deferred(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The connection's secret changed while the task was deferred.
        wrong_secret(server, monkeypatch)
        trigger = PayoutStatusTrigger(
            trade_nos=["A", "B", "C"], vexora_conn_id="vexora_default", end_time=9e9, poll_interval=0
        )

        (event,) = asyncio.run(collect(trigger))

        assert (event["status"], event["retryable"], event["error_type"]) == (
            "error",
            False,
            "VexoraAuthError",
        )
        assert sent(server) == (1, 1)
        sensor = PayoutStatusSensor(task_id="wait", trade_nos=["A", "B", "C"], deferrable=True)
        with pytest.raises(VexoraAuthError, match=r"app secret \(password\)"):
            sensor.resume_execution("execute_complete", {"event": event}, {})  # type: ignore[arg-type]
