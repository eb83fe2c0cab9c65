"""PayoutStatusSensor: every state and policy in poke mode and deferrable mode, with equal results.

The gateway is a script of answers per trade (status codes or errors), served to the sensor as a
sync hook and to the trigger as an async session. Deferrable runs go the whole way: execute →
TaskDeferred → serde round-trip of the trigger kwargs → trigger ``run()`` → ``resume_execution``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import DAG, task
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow.sdk.serde import deserialize, serialize
from airflow.triggers.base import TriggerEvent

from vexora_provider.exceptions import (
    VexoraAPIError,
    VexoraAuthError,
    VexoraConfigError,
    VexoraDeprecationWarning,
    VexoraError,
    VexoraHTTPError,
    VexoraInvalidTradeNoError,
    VexoraTransportError,
)
from vexora_provider.models import PayoutQueryError, PayoutStatus, StatusMap, parse_payout_status
from vexora_provider.sensors import payout_status as sensor_module
from vexora_provider.sensors.payout_status import PayoutStatusSensor
from vexora_provider.triggers import payout_status as trigger_module
from vexora_provider.triggers.payout_status import PayoutStatusTrigger

SUCCESS, PARTIAL, PENDING, FAILED = "0000", "0001", "0015", "00029"
Answer = str | VexoraError


def payout(trade_no: str, code: str, status_map: StatusMap | None = None) -> PayoutStatus:
    """A payout status as the hook returns it, classified with ``status_map``."""
    data = {"tradeNo": trade_no, "status": code, "message": f"msg {code}", "amount": "12.50"}
    return parse_payout_status(data, trade_no=trade_no, status_map=status_map or StatusMap(), tz=None)


def transient(trade_no: str = "T1") -> VexoraError:
    return VexoraHTTPError(http_status=503, trade_no=trade_no, transient=True, attempts=4)


class ScriptedGateway:
    """
    Answers per trade, consumed one per query (the last one repeats); a hook class, hook and session.

    :param script: trade number → answers (status codes or errors to raise).
    :param status_map: the connection's status map.
    """

    def __init__(self, script: dict[str, list[Answer]], status_map: StatusMap | None = None) -> None:
        self.script = {trade_no: list(answers) for trade_no, answers in script.items()}
        self.status_map = status_map or StatusMap()
        self.calls: list[str] = []
        self.conn_ids: list[str] = []
        self.sessions_opened = self.sessions_closed = 0

    def answer(self, trade_no: str) -> PayoutStatus:
        self.calls.append(trade_no)
        answers = self.script[trade_no]
        item = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(item, VexoraError):
            raise item
        return payout(trade_no, item, self.status_map)

    # the hook class and the sync hook
    def __call__(self, vexora_conn_id: str = "vexora_default", **_: Any) -> ScriptedGateway:
        self.conn_ids.append(vexora_conn_id)
        return self

    def get_payout_status(self, trade_no: str) -> PayoutStatus:
        return self.answer(trade_no)

    def close(self) -> None:
        pass

    # the async session
    @asynccontextmanager
    async def async_session(self, **_: Any) -> AsyncIterator[ScriptedGateway]:
        self.sessions_opened += 1
        try:
            yield self
        finally:
            self.sessions_closed += 1

    async def stream_payout_statuses(
        self, trade_nos: Iterable[str], *, concurrency: int | None = None
    ) -> AsyncIterator[PayoutStatus | PayoutQueryError]:
        # Completion order is not input order: answer back to front.
        for trade_no in reversed(list(trade_nos)):
            try:
                yield self.answer(trade_no)
            except VexoraError as error:
                yield PayoutQueryError(trade_no, error)


class Store(dict[str, Any]):
    """An in-memory ``task_state_store``: ``get`` as a dict, plus ``set``."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


async def no_wait(_: float) -> None:
    pass


async def collect(trigger: PayoutStatusTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


Outcome = tuple[Any, Any]


def outcome_of(run: Callable[[], Any]) -> Outcome:
    try:
        return ("returned", run())
    except (AirflowException, ValueError, TypeError) as error:
        return (type(error), str(error))


def run_poke(gateway: ScriptedGateway, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Outcome:
    monkeypatch.setattr(sensor_module, "VexoraHook", gateway)
    sensor = PayoutStatusSensor(task_id="wait", poke_interval=0, deferrable=False, **kwargs)
    return outcome_of(lambda: sensor.execute({}))  # type: ignore[arg-type]


def run_deferred(gateway: ScriptedGateway, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Outcome:
    monkeypatch.setattr(sensor_module, "VexoraHook", gateway)
    monkeypatch.setattr(trigger_module, "VexoraHook", gateway)
    monkeypatch.setattr(trigger_module, "sleep", no_wait)
    sensor = PayoutStatusSensor(task_id="wait", poke_interval=0, deferrable=True, **kwargs)
    try:
        return ("returned", sensor.execute({}))  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        trigger, method, method_kwargs, timeout = (
            deferred.trigger,
            deferred.method_name,
            deferred.kwargs,
            deferred.timeout,
        )
    except (AirflowException, ValueError, TypeError) as error:
        return (type(error), str(error))
    assert isinstance(trigger, PayoutStatusTrigger)
    assert timeout is not None
    # What the task runner and triggerer do: serde the kwargs, rebuild the trigger by classpath.
    classpath, trigger_kwargs = trigger.serialize()
    assert classpath == "vexora_provider.triggers.payout_status.PayoutStatusTrigger"
    rebuilt = PayoutStatusTrigger(**deserialize(serialize(trigger_kwargs)))
    events = asyncio.run(collect(rebuilt))
    assert len(events) == 1
    payload = events[0].payload
    assert json.loads(json.dumps(payload)) == payload
    assert gateway.sessions_opened == gateway.sessions_closed == 1
    resumed = PayoutStatusSensor(task_id="wait", poke_interval=0, deferrable=True, **kwargs)
    return outcome_of(
        lambda: resumed.resume_execution(method, {**(method_kwargs or {}), "event": payload}, {})  # type: ignore[arg-type]
    )


def both_modes(
    script: dict[str, list[Answer]],
    monkeypatch: pytest.MonkeyPatch,
    status_map: StatusMap | None = None,
    **kw: Any,
) -> Outcome:
    """Run the same gateway answers in both modes, assert equal outcomes, return it."""
    poked = run_poke(ScriptedGateway(script, status_map), monkeypatch, **kw)
    deferred = run_deferred(ScriptedGateway(script, status_map), monkeypatch, **kw)
    if poked[0] is AirflowSensorTimeout:
        assert deferred[0] is AirflowSensorTimeout  # the wording of the two timeouts differs
    else:
        assert poked == deferred
    return poked


def expected(trade_no: str, code: str, state: str) -> dict[str, str | None]:
    return {
        "trade_no": trade_no,
        "platform_trade_no": None,
        "state": state,
        "status_code": code,
        "message": f"msg {code}",
        "amount": "12.50",
        "order_amount": None,
        "pay_amount": None,
        "success_time": None,
    }


class TestPayoutStatusSensor:
    def test_defaults(self) -> None:
        sensor = PayoutStatusSensor(task_id="wait", trade_nos="T1")
        assert sensor.template_fields == ("trade_nos", "vexora_conn_id")
        assert sensor.poke_interval == 60
        assert sensor.vexora_conn_id == "vexora_default"
        assert sensor.success_states == ["partial", "success"]
        assert sensor.fail_on_failed is True
        assert sensor.max_consecutive_failures == 3
        assert sensor.deferrable is False  # [operators] default_deferrable is False by default

    def test_short_poke_interval_allowed_when_asked(self) -> None:
        assert PayoutStatusSensor(task_id="wait", trade_nos="T1", poke_interval=2).poke_interval == 2

    @pytest.mark.parametrize(
        "success_states",
        [["pending"], ["unknown"], ["paid"], []],
        ids=["pending", "unknown", "typo", "empty"],
    )
    def test_rejects_success_states_that_are_not_terminal(self, success_states: list[str]) -> None:
        with pytest.raises(ValueError, match="success_states"):
            PayoutStatusSensor(task_id="wait", trade_nos="T1", success_states=success_states)

    def test_rejects_zero_failure_threshold(self) -> None:
        with pytest.raises(ValueError, match="max_consecutive_failures"):
            PayoutStatusSensor(task_id="wait", trade_nos="T1", max_consecutive_failures=0)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("T1", {"trade_no": "T1"}),  # one string: one status dict
            (" T1 ", {"trade_no": "T1"}),
            (["T1", " T2", "T1"], [{"trade_no": "T1"}, {"trade_no": "T2"}]),
            ("['T1', 'T2']", [{"trade_no": "T1"}, {"trade_no": "T2"}]),  # a list Jinja rendered
            ({"T2", "T1"}, [{"trade_no": "T1"}, {"trade_no": "T2"}]),  # a set, sorted
            ([b"T1", 7], [{"trade_no": "T1"}, {"trade_no": "7"}]),
        ],
    )
    def test_trade_nos_follow_the_shared_rule(
        self, value: object, expected: object, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        script = {"T1": [SUCCESS], "T2": [SUCCESS], "7": [SUCCESS]}
        for run in (run_poke, run_deferred):
            kind, result = run(ScriptedGateway(script), monkeypatch, trade_nos=value)
            assert kind == "returned"
            if isinstance(expected, dict):
                assert isinstance(result, dict)
                assert result["trade_no"] == expected["trade_no"]
            else:
                assert [r["trade_no"] for r in result] == [e["trade_no"] for e in expected]

    @pytest.mark.parametrize(
        ("value", "match"),
        [
            ("ORD-1,ORD-2", "did you mean a list"),
            ("ORD-1 ORD-2", "did you mean a list"),
            (["T1", ""], "not a trade number"),
            (["T1", None], "not a trade number"),
            (["T1", "X" * 33], "at most 32"),
            ({"T1": 1}, "mapping"),
            (2.5, "not float"),
            ("[T1, T2]", "did you mean a list"),
        ],
    )
    def test_mistakes_are_refused_when_the_dag_is_parsed(self, value: object, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            PayoutStatusSensor(task_id="wait", trade_nos=value)

    @pytest.mark.parametrize("value", ["{{ params.trade }}", ["{{ params.a }}", "B"]])
    def test_templates_are_checked_when_rendered(self, value: object) -> None:
        assert PayoutStatusSensor(task_id="wait", trade_nos=value).trade_nos == value

    @pytest.mark.parametrize(("value", "match"), [("A,B", "did you mean a list"), (["T1", None], "None")])
    def test_a_rendered_mistake_fails_without_retries(
        self, value: object, match: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sensor_module, "VexoraHook", ScriptedGateway({}))
        sensor = PayoutStatusSensor(task_id="wait", trade_nos="{{ params.t }}", deferrable=False)
        sensor.trade_nos = value  # what rendering gave
        with pytest.raises(AirflowFailException, match=match):
            sensor.execute({})  # type: ignore[arg-type]

    @pytest.mark.filterwarnings(
        "default::vexora_provider.exceptions.VexoraDeprecationWarning",
        "ignore:PayoutStatusSensor\\(trade_no:UserWarning",  # the DagBag's own echo of it
    )
    def test_the_deprecation_shows_when_airflow_parses_the_dag(self, tmp_path: Path) -> None:
        from airflow.dag_processing.dagbag import DagBag

        dag_file = tmp_path / "old_dag.py"
        dag_file.write_text(
            "from airflow.sdk import DAG\n"
            "from vexora_provider.sensors.payout_status import PayoutStatusSensor\n"
            "with DAG('old', schedule=None):\n"
            "    PayoutStatusSensor(task_id='wait', trade_no='T1')\n"
        )
        bag = DagBag(dag_folder=str(tmp_path))
        assert bag.import_errors == {}
        (warning,) = bag.captured_warnings[str(dag_file)]
        assert warning.startswith(f"{dag_file}:4: vexora_provider.exceptions.VexoraDeprecationWarning: ")

    def test_trade_no_is_a_deprecated_alias(self) -> None:
        with pytest.warns(VexoraDeprecationWarning, match="use trade_nos") as caught:
            sensor = PayoutStatusSensor(task_id="wait", trade_no=["T1"])
        assert sensor.trade_nos == ["T1"]
        assert caught[0].filename == __file__  # points at the DAG author's line

    def test_trade_no_and_trade_nos_together_are_refused(self) -> None:
        with pytest.raises(ValueError, match="trade_nos only"):
            PayoutStatusSensor(task_id="wait", trade_no="T1", trade_nos="T1")

    def test_trade_nos_is_required(self) -> None:
        with pytest.raises(ValueError, match="trade_nos is required"):
            PayoutStatusSensor(task_id="wait")

    def test_literal_list_skips_jinja(self) -> None:
        sensor = PayoutStatusSensor(task_id="wait", trade_nos=["T1", "T2"])
        assert sensor.render_template(["T1", "T2"], {}) == ["T1", "T2"]  # type: ignore[arg-type]

    def test_xcomarg_trade_no_wires_the_dependency(self) -> None:
        with DAG("d", schedule=None):

            @task
            def payouts() -> list[str]:
                return ["T1", "T2"]

            upstream = payouts()
            sensor = PayoutStatusSensor(task_id="wait", trade_nos=upstream)
        assert sensor.upstream_task_ids == {"payouts"}

    @pytest.mark.parametrize(
        ("answers", "state"),
        [([SUCCESS], "success"), ([PENDING, PARTIAL], "partial"), ([PENDING, PENDING, SUCCESS], "success")],
    )
    def test_single_trade_returns_one_dict(
        self, answers: list[Answer], state: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        result = both_modes({"T1": answers}, monkeypatch, trade_nos="T1")
        assert result == ("returned", expected("T1", answers[-1], state))  # type: ignore[arg-type]

    def test_list_returns_dicts_in_input_order(self, monkeypatch: pytest.MonkeyPatch) -> None:
        script: dict[str, list[Answer]] = {
            "T1": [PENDING, PENDING, SUCCESS],
            "T2": [PARTIAL],
            "T3": [PENDING, SUCCESS],
        }
        result = both_modes(script, monkeypatch, trade_nos=["T1", "T2", "T3"])
        assert result == (
            "returned",
            [
                expected("T1", SUCCESS, "success"),
                expected("T2", PARTIAL, "partial"),
                expected("T3", SUCCESS, "success"),
            ],
        )

    def test_final_payouts_are_not_queried_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for run in (run_poke, run_deferred):
            gateway = ScriptedGateway({"T1": [SUCCESS], "T2": [PENDING, PENDING, SUCCESS]})
            assert run(gateway, monkeypatch, trade_nos=["T1", "T2"])[0] == "returned"
            assert gateway.calls.count("T1") == 1
            assert gateway.calls.count("T2") == 3

    def test_already_final_payout_does_not_defer(self, monkeypatch: pytest.MonkeyPatch) -> None:
        gateway = ScriptedGateway({"T1": [SUCCESS]})
        monkeypatch.setattr(sensor_module, "VexoraHook", gateway)
        sensor = PayoutStatusSensor(task_id="wait", trade_nos="T1", deferrable=True)
        assert sensor.execute({})["state"] == "success"  # type: ignore[arg-type]
        assert gateway.sessions_opened == 0

    def test_defer_carries_plain_data_and_the_deadline(self, monkeypatch: pytest.MonkeyPatch) -> None:
        gateway = ScriptedGateway({"T1": [SUCCESS], "T2": [PENDING], "T3": [transient("T3")]})
        monkeypatch.setattr(sensor_module, "VexoraHook", gateway)
        monkeypatch.setattr(sensor_module.time, "time", lambda: 1_000.0)
        sensor = PayoutStatusSensor(
            task_id="wait",
            trade_nos=["T1", "T2", "T3"],
            vexora_conn_id="vx",
            deferrable=True,
            poke_interval=45,
            timeout=600,
            exponential_backoff=True,
            max_wait=timedelta(minutes=10),
            success_states=["success"],
            fail_on_failed=False,
            max_consecutive_failures=5,
        )
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute({})  # type: ignore[arg-type]
        assert deferred.value.method_name == "execute_complete"
        # The trigger's own deadline decides; Airflow's deferral timeout is a later backstop.
        assert deferred.value.timeout == timedelta(seconds=600) + sensor_module.DEFERRAL_GRACE
        assert deferred.value.timeout > timedelta(seconds=600)
        _, kwargs = deferred.value.trigger.serialize()
        assert kwargs == {
            "trade_nos": ["T1", "T2", "T3"],
            "vexora_conn_id": "vx",
            "end_time": 1_600.0,
            "poll_interval": 45.0,
            "exponential_backoff": True,
            "max_wait": 600.0,
            "success_states": ["success"],
            "fail_on_failed": False,
            "max_consecutive_failures": 5,
            "known_statuses": [expected("T1", SUCCESS, "success")],
            "failed_polls": 1,
        }

    @pytest.mark.parametrize(
        ("answers", "policy", "code"),
        [
            ([PENDING, FAILED], {}, FAILED),
            ([FAILED], {"success_states": ["success", "partial"]}, FAILED),
            ([PARTIAL], {"success_states": ["success"]}, PARTIAL),
        ],
        ids=["failed", "failed-explicit-policy", "partial-not-accepted"],
    )
    def test_policy_failure_fails_without_retries(
        self, answers: list[Answer], policy: dict[str, Any], code: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        kind, message = both_modes({"T1": answers}, monkeypatch, trade_nos="T1", **policy)
        assert kind is AirflowFailException
        assert "'T1'" in message
        assert code in message
        assert f"msg {code}" in message

    @pytest.mark.parametrize(
        ("code", "state"), [(FAILED, "failed"), (PARTIAL, "partial")], ids=["failed", "partial"]
    )
    def test_fail_on_failed_false_reports_instead(
        self, code: str, state: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        result = both_modes(
            {"T1": [PENDING, code], "T2": [SUCCESS]},
            monkeypatch,
            trade_nos=["T1", "T2"],
            success_states=["success"],
            fail_on_failed=False,
        )
        assert result == ("returned", [expected("T1", code, state), expected("T2", SUCCESS, "success")])

    def test_one_failed_payout_fails_fast_while_others_pend(self, monkeypatch: pytest.MonkeyPatch) -> None:
        kind, message = both_modes(
            {"T1": [PENDING], "T2": [PENDING, FAILED]}, monkeypatch, trade_nos=["T1", "T2"]
        )
        assert kind is AirflowFailException
        assert "'T2'" in message

    @pytest.mark.parametrize("fail_on_failed", [True, False])
    def test_unknown_code_fails_loudly(self, fail_on_failed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
        kind, message = both_modes(
            {"T1": [PENDING, "0099"]}, monkeypatch, trade_nos="T1", fail_on_failed=fail_on_failed
        )
        assert kind is AirflowFailException
        assert "'T1'" in message
        assert "0099" in message
        assert "status_map" in message

    @pytest.mark.parametrize(
        ("mapped", "outcome"), [("success", "returned"), ("failed", AirflowFailException)]
    )
    def test_status_map_decides_unknown_codes(
        self, mapped: str, outcome: object, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        status_map = StatusMap.with_overrides({"0099": mapped})
        result = both_modes({"T1": [PENDING, "0099"]}, monkeypatch, status_map, trade_nos="T1")
        assert result[0] == outcome

    @pytest.mark.parametrize(
        "error",
        [
            transient(),
            VexoraAPIError(code="8000", msg="query failed", trade_no="T1", transient=True),
            VexoraTransportError("read timeout after 10s", trade_no="T1", transient=True),
        ],
        ids=["http-503", "code-8000", "timeout"],
    )
    def test_failed_polls_below_threshold_keep_waiting(
        self, error: VexoraError, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        result = both_modes({"T1": [error, error, SUCCESS]}, monkeypatch, trade_nos="T1")
        assert result == ("returned", expected("T1", SUCCESS, "success"))

    def test_failed_polls_at_threshold_fail_retryably(self, monkeypatch: pytest.MonkeyPatch) -> None:
        kind, message = both_modes({"T1": [transient()]}, monkeypatch, trade_nos="T1")
        assert kind is AirflowException
        assert message == "trade 'T1': HTTP 503 from the gateway (3 polls in a row)"

    def test_threshold_is_configurable_and_names_other_failing_trades(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        script: dict[str, list[Answer]] = {"T1": [transient("T1")], "T2": [transient("T2")]}
        kind, message = both_modes(script, monkeypatch, trade_nos=["T1", "T2"], max_consecutive_failures=5)
        assert kind is AirflowException
        assert "(5 polls in a row; 1 more trade failing too)" in message

    def test_a_healthy_poll_clears_the_failure_count(self, monkeypatch: pytest.MonkeyPatch) -> None:
        error = transient()
        answers: list[Answer] = [error, error, PENDING, error, error, PENDING, SUCCESS]
        assert both_modes({"T1": answers}, monkeypatch, trade_nos="T1")[0] == "returned"

    @pytest.mark.parametrize(
        "error",
        [
            VexoraInvalidTradeNoError("a trade number has at most 32 characters", trade_no="T1"),
            VexoraConfigError("connection 'vexora_default' has no login"),
        ],
        ids=["invalid-trade-no", "config"],
    )
    def test_permanent_errors_fail_at_once(self, error: VexoraError, monkeypatch: pytest.MonkeyPatch) -> None:
        kind, message = both_modes({"T1": [error, SUCCESS]}, monkeypatch, trade_nos="T1")
        assert kind is AirflowFailException
        assert message == str(error)

    def test_refused_credentials_fail_with_the_auth_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        refused = VexoraAuthError(
            "the gateway refused this connection's credentials: check the merchant number (login) "
            "and the app secret (password)",
            code="8000",
            trade_no="T1",
        )
        # Pending first, so deferrable mode learns it in the trigger, poke mode in its second poke.
        kind, message = both_modes({"T1": [PENDING, refused]}, monkeypatch, trade_nos="T1")
        assert kind is VexoraAuthError
        assert message == str(refused)

    def test_timeout_raises_sensor_timeout(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert (
            both_modes({"T1": [PENDING]}, monkeypatch, trade_nos=["T1"], timeout=0)[0] is AirflowSensorTimeout
        )

    @pytest.mark.parametrize("run", [run_poke, run_deferred], ids=["poke", "deferrable"])
    def test_timeout_names_what_is_pending(
        self, run: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        kind, message = run(
            ScriptedGateway({"T1": [SUCCESS], "T2": [PENDING]}),
            monkeypatch,
            trade_nos=["T1", "T2"],
            timeout=0,
        )
        assert kind is AirflowSensorTimeout
        assert "1 of 2 payouts not final yet: 'T2'" in message

    @pytest.mark.parametrize(
        ("script", "kw"),
        [
            ({"T1": [FAILED]}, {}),
            ({"T1": ["0099"]}, {}),
            ({"T1": [transient()]}, {}),
            ({"T1": [PENDING]}, {"timeout": 0}),
        ],
        ids=["failed", "unknown", "errors", "timeout"],
    )
    def test_soft_fail_skips_in_both_modes(
        self, script: dict[str, list[Answer]], kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for run in (run_poke, run_deferred):
            kind, _ = run(ScriptedGateway(script), monkeypatch, trade_nos="T1", soft_fail=True, **kw)
            assert kind is AirflowSkipException, run.__name__
        # Same answers on the first poke as on a later one.
        delayed = {t: [PENDING, *answers] for t, answers in script.items()}
        assert run_deferred(ScriptedGateway(delayed), monkeypatch, trade_nos="T1", soft_fail=True, **kw)[
            0
        ] is (AirflowSkipException)

    def test_empty_list_has_nothing_to_wait_for(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert both_modes({}, monkeypatch, trade_nos=[]) == ("returned", [])

    def test_reschedule_mode_counts_failed_polls_across_reschedules(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = Store()
        gateway = ScriptedGateway({"T1": [transient(), transient(), PENDING, transient()]})
        monkeypatch.setattr(sensor_module, "VexoraHook", gateway)

        def poke(try_number: int = 1) -> Any:
            # Each reschedule is a fresh process: a fresh sensor, the same task_state_store.
            sensor = PayoutStatusSensor(task_id="wait", trade_nos="T1", mode="reschedule")
            ti = SimpleNamespace(try_number=try_number)
            return sensor.poke({"task_state_store": store, "ti": ti})  # type: ignore[arg-type]

        assert not poke()
        assert not poke()
        assert store["vexora_failed_polls"] == {"try_number": 1, "failed_polls": 2}
        assert not poke()  # pending: a healthy answer clears the count
        assert store["vexora_failed_polls"] == {"try_number": 1, "failed_polls": 0}
        assert not poke()
        assert store["vexora_failed_polls"] == {"try_number": 1, "failed_polls": 1}

    def test_reschedule_mode_retry_starts_a_fresh_count(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # The store outlives the try; a retry after "3 polls in a row" must get its own 3 polls.
        store = Store()
        monkeypatch.setattr(sensor_module, "VexoraHook", ScriptedGateway({"T1": [transient()]}))

        def poke(try_number: int) -> Any:
            sensor = PayoutStatusSensor(task_id="wait", trade_nos="T1", mode="reschedule")
            ti = SimpleNamespace(try_number=try_number)
            return sensor.poke({"task_state_store": store, "ti": ti})  # type: ignore[arg-type]

        assert not poke(1)
        assert not poke(1)
        with pytest.raises(AirflowException, match="3 polls in a row"):
            poke(1)
        assert not poke(2)  # the first failed poll of the retry is 1 of 3, not 4
        assert store["vexora_failed_polls"] == {"try_number": 2, "failed_polls": 1}

    def test_poke_mode_uses_exponential_backoff_of_the_base_sensor(self) -> None:
        sensor = PayoutStatusSensor(
            task_id="wait", trade_nos="T1", exponential_backoff=True, poke_interval=30
        )
        intervals = [sensor._get_next_poke_interval(0.0, lambda: 0.0, n) for n in (1, 2, 3, 4)]
        assert intervals[-1] > intervals[0]


class TestExecuteComplete:
    @pytest.mark.parametrize(
        "event",
        [
            None,
            "success",
            {},
            {"status": "done", "message": "", "statuses": []},
            {"status": "SUCCESS", "message": "", "statuses": []},
            {"status": "success", "statuses": []},
            {"status": "success", "message": "", "statuses": {}},
        ],
        ids=["none", "str", "empty", "unknown", "case", "no-message", "statuses-not-list"],
    )
    def test_invalid_event_raises(self, event: Any) -> None:
        sensor = PayoutStatusSensor(task_id="wait", trade_nos="T1", deferrable=True)
        with pytest.raises(AirflowException, match="invalid event"):
            sensor.execute_complete({}, event=event)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("status", "retryable", "raises"),
        [
            ("failed", False, AirflowFailException),
            ("error", True, AirflowException),
            ("error", False, AirflowFailException),
            ("timeout", True, AirflowSensorTimeout),
        ],
    )
    def test_only_success_returns(self, status: str, retryable: bool, raises: type[Exception]) -> None:
        sensor = PayoutStatusSensor(task_id="wait", trade_nos="T1", deferrable=True)
        event = {"status": status, "message": "trade 'T1': boom", "statuses": [], "retryable": retryable}
        with pytest.raises(raises, match="trade 'T1': boom") as raised:
            sensor.execute_complete({}, event=event)  # type: ignore[arg-type]
        assert type(raised.value) is raises
