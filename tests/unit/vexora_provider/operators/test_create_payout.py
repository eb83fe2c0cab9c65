"""CreatePayoutOperator: every branch of the decision table, with a fake Vexora holding a ledger.

The fake quacks like the hook (create, find, status, and the async session the trigger opens);
it records what was asked and what the task state store held when the create was sent.
Deferrable runs go the whole way: execute → TaskDeferred → serde round-trip of the trigger →
trigger ``run()`` → ``resume_execution``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
from airflow.sdk.serde import deserialize, serialize

from vexora_provider.exceptions import (
    VexoraAuthError,
    VexoraError,
    VexoraHTTPError,
    VexoraPayoutExistsError,
    VexoraPayoutUnknownError,
)
from vexora_provider.models import PayoutQueryError, PayoutStatus, StatusMap, parse_payout_status
from vexora_provider.operators import create_payout as create_module
from vexora_provider.operators.create_payout import STATE_KEY, CreatePayoutOperator, derive_trade_no
from vexora_provider.retry_policy import VEXORA_RETRY_POLICY
from vexora_provider.triggers import payout_status as trigger_module
from vexora_provider.triggers.payout_status import PayoutStatusTrigger

SUCCESS, PARTIAL, PENDING, FAILED, UNDOCUMENTED = "0000", "0001", "0015", "00029", "0042"
FIELDS = {"accountNo": "0123456789", "bankCode": "058"}


def payout(trade_no: str, code: str, amount: str = "150.00", key: str = "amount") -> PayoutStatus:
    data = {
        "tradeNo": trade_no,
        "platFormTradeNo": f"VX{trade_no}",
        "status": code,
        "message": f"m{code}",
        key: amount,
    }
    return parse_payout_status(data, trade_no=trade_no, status_map=StatusMap(), tz=None)


class Store(dict[str, Any]):
    """An in-memory ``task_state_store``."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


class FakeVexora:
    """
    A hook class, sync hook and async session over one ledger of payouts.

    :param created: the status code a new payout is created with.
    :param polls: per trade, the codes (or errors) later status queries answer; the last repeats.
    """

    def __init__(
        self, created: str = PENDING, polls: dict[str, list[str | VexoraError]] | None = None
    ) -> None:
        self.created = created
        self.polls = polls or {}
        self.payouts: dict[str, PayoutStatus] = {}
        self.asked: list[tuple[str, str]] = []
        self.store: Store | None = None
        self.stored_at_create: list[Any] = []
        self.create_error: VexoraError | None = None

    def __call__(self, vexora_conn_id: str = "vexora_default", **_: Any) -> FakeVexora:
        return self

    def create_payout(self, *, trade_no: str, amount: str, fields: Any, **_: Any) -> PayoutStatus:
        self.asked.append(("create", trade_no))
        self.stored_at_create.append(dict(self.store or {}).get(STATE_KEY))
        if self.create_error is not None:
            raise self.create_error
        if trade_no in self.payouts:
            raise VexoraPayoutExistsError(existing=self.payouts[trade_no], trade_no=trade_no)
        made = self.payouts[trade_no] = payout(trade_no, self.created, amount)
        return made

    def find_payout(self, trade_no: str) -> PayoutStatus | None:
        self.asked.append(("find", trade_no))
        return self.payouts.get(trade_no)

    def get_payout_status(self, trade_no: str) -> PayoutStatus:
        self.asked.append(("status", trade_no))
        script = self.polls.get(trade_no, [])
        item = script.pop(0) if len(script) > 1 else (script[0] if script else None)
        if isinstance(item, VexoraError):
            raise item
        if item is not None:
            self.payouts[trade_no] = payout(
                trade_no, item, self.payouts[trade_no].raw.get("amount", "150.00")
            )
        return self.payouts[trade_no]

    def close(self) -> None:
        pass

    @asynccontextmanager
    async def async_session(self, **_: Any) -> AsyncIterator[FakeVexora]:
        yield self

    async def stream_payout_statuses(
        self, trade_nos: Iterable[str], **_: Any
    ) -> AsyncIterator[PayoutStatus | PayoutQueryError]:
        for trade_no in trade_nos:
            try:
                yield self.get_payout_status(trade_no)
            except VexoraError as error:
                yield PayoutQueryError(trade_no, error)


@pytest.fixture
def vexora(monkeypatch: pytest.MonkeyPatch) -> FakeVexora:
    fake = FakeVexora()
    monkeypatch.setattr(create_module, "VexoraHook", fake)
    monkeypatch.setattr(trigger_module, "VexoraHook", fake)

    async def no_wait(_: float) -> None:
        pass

    monkeypatch.setattr(trigger_module, "sleep", no_wait)
    return fake


def context(vexora: FakeVexora, map_index: int = -1, store: Store | None = None) -> dict[str, Any]:
    vexora.store = store if store is not None else Store()
    ti = SimpleNamespace(
        dag_id="pay", run_id="manual__1", task_id="create", map_index=map_index, try_number=1
    )
    return {"ti": ti, "task_state_store": vexora.store}


def operator(**kwargs: Any) -> CreatePayoutOperator:
    kwargs = {"task_id": "create", "trade_no": "PO-1", "amount": "150.00", "fields": FIELDS, **kwargs}
    return CreatePayoutOperator(**kwargs)


def run(vexora: FakeVexora, ctx: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Execute like a worker would; a deferral goes through the trigger and resumes."""
    ctx = ctx or context(vexora)
    try:
        return operator(**kwargs).execute(ctx)  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        trigger, method, method_kwargs = deferred.trigger, deferred.method_name, deferred.kwargs
    assert isinstance(trigger, PayoutStatusTrigger)
    _, trigger_kwargs = trigger.serialize()
    rebuilt = PayoutStatusTrigger(**deserialize(serialize(trigger_kwargs)))
    events = asyncio.run(collect(rebuilt))
    resumed = operator(**kwargs)
    next_kwargs = deserialize(serialize({**(method_kwargs or {}), "event": events[0].payload}))
    return resumed.resume_execution(method, next_kwargs, ctx)  # type: ignore[arg-type]


async def collect(trigger: PayoutStatusTrigger) -> list[Any]:
    return [event async for event in trigger.run()]


def xcom(trade_no: str, code: str, state: str, created: bool, amount: str = "150.00") -> dict[str, Any]:
    return {
        "trade_no": trade_no,
        "platform_trade_no": f"VX{trade_no}",
        "state": state,
        "status_code": code,
        "message": f"m{code}",
        "amount": amount,
        "order_amount": None,
        "pay_amount": None,
        "success_time": None,
        "created": created,
    }


WAIT_MODES = [
    pytest.param({"wait_for_completion": False}, id="no-wait"),
    pytest.param({"wait_for_completion": True, "deferrable": False, "poll_interval": 0}, id="poke"),
    pytest.param({"wait_for_completion": True, "deferrable": True, "poll_interval": 0}, id="deferrable"),
]


class TestCreatePayoutOperator:
    def test_defaults_and_template_fields(self) -> None:
        op = operator()
        assert set(op.template_fields) == {
            "trade_no",
            "amount",
            "fields",
            "notify_url",
            "remark",
            "vexora_conn_id",
        }
        assert op.retry_policy is VEXORA_RETRY_POLICY
        assert (op.wait_for_completion, op.success_states, op.fail_on_failed) == (
            False,
            ["partial", "success"],
            True,
        )
        assert operator(retry_policy=None).retry_policy is None

    def test_dag_default_args_choose_the_retry_policy(self) -> None:
        with DAG("d", schedule=None, default_args={"retry_policy": None}):
            assert operator().retry_policy is None

    def test_new_trade_is_recorded_before_the_create_then_created(self, vexora: FakeVexora) -> None:
        assert run(vexora) == xcom("PO-1", PENDING, "pending", created=True)
        assert vexora.asked == [("create", "PO-1")]
        assert vexora.stored_at_create == [{"trade_no": "PO-1", "amount": "150.00"}]

    @pytest.mark.parametrize("mode", WAIT_MODES)
    @pytest.mark.parametrize(
        ("code", "state"), [(PENDING, "pending"), (SUCCESS, "success"), (PARTIAL, "partial")]
    )
    def test_an_existing_payout_is_returned_not_created(
        self, vexora: FakeVexora, mode: dict[str, Any], code: str, state: str
    ) -> None:
        vexora.payouts["PO-1"] = payout("PO-1", code)
        vexora.polls["PO-1"] = [SUCCESS]
        result = run(vexora, **mode)
        if mode["wait_for_completion"] and code == PENDING:
            assert result == xcom("PO-1", SUCCESS, "success", created=False)
        else:
            assert result == xcom("PO-1", code, state, created=False)
        assert vexora.asked.count(("create", "PO-1")) == 1  # asked once, and the fake created nothing
        assert len(vexora.payouts) == 1

    @pytest.mark.parametrize("mode", WAIT_MODES)
    @pytest.mark.parametrize("created", [False, True], ids=["existing", "created"])
    def test_a_failed_payout_fails_the_task_naming_the_trade(
        self, vexora: FakeVexora, mode: dict[str, Any], created: bool
    ) -> None:
        if created:
            vexora.created = FAILED
        else:
            vexora.payouts["PO-1"] = payout("PO-1", FAILED)
        with pytest.raises(AirflowFailException) as raised:
            run(vexora, **mode)
        message = str(raised.value)
        assert "trade 'PO-1': payout failed (status 00029: m00029)" in message
        assert "a person must choose a new trade_no" in message

    @pytest.mark.parametrize("mode", WAIT_MODES)
    def test_an_undocumented_code_fails_the_task(self, vexora: FakeVexora, mode: dict[str, Any]) -> None:
        vexora.payouts["PO-1"] = payout("PO-1", UNDOCUMENTED)
        with pytest.raises(AirflowFailException, match=r"0042.*status_map"):
            run(vexora, **mode)

    def test_fail_on_failed_false_returns_the_failed_payout(self, vexora: FakeVexora) -> None:
        vexora.payouts["PO-1"] = payout("PO-1", FAILED)
        assert run(vexora, fail_on_failed=False)["state"] == "failed"

    @pytest.mark.parametrize(
        "existing",
        [
            payout("PO-1", PENDING, "150.00"),
            payout("PO-1", SUCCESS, "150.00"),
            payout("PO-1", FAILED, "150.00", key="orderAmount"),
        ],
        ids=["pending", "success", "failed-order-amount"],
    )
    def test_an_existing_payout_of_another_amount_is_not_ours(
        self, vexora: FakeVexora, existing: PayoutStatus
    ) -> None:
        vexora.payouts["PO-1"] = existing
        with pytest.raises(AirflowFailException, match=r"for 150\.00, but this task asks for 150\.01"):
            run(vexora, amount="150.01")
        assert vexora.payouts == {"PO-1": existing}

    @pytest.mark.parametrize("amount", ["150", "150.0", Decimal("150.000"), 150])
    def test_the_same_amount_written_differently_is_ours(self, vexora: FakeVexora, amount: object) -> None:
        vexora.payouts["PO-1"] = payout("PO-1", SUCCESS, "150.00")
        assert run(vexora, amount=amount)["created"] is False

    def test_partial_and_failed_actual_amounts_are_not_compared(self, vexora: FakeVexora) -> None:
        vexora.payouts["PO-1"] = payout("PO-1", PARTIAL, "90.00")
        assert run(vexora)["state"] == "partial"

    @pytest.mark.parametrize(
        ("amount", "words"),
        [(150.0, "float"), ("1e3", "plain decimal"), ("-5", "plain decimal"), ("0", "zero")],
    )
    def test_bad_input_fails_before_anything_is_sent(
        self, vexora: FakeVexora, amount: object, words: str
    ) -> None:
        ctx = context(vexora)
        with pytest.raises(AirflowFailException, match=words):
            operator(amount=amount).execute(ctx)  # type: ignore[arg-type]
        assert vexora.asked == []
        assert ctx["task_state_store"] == {}

    @pytest.mark.parametrize("trade_no", ["", "x" * 33])
    def test_a_bad_trade_number_fails_before_anything_is_sent(
        self, vexora: FakeVexora, trade_no: str
    ) -> None:
        with pytest.raises(AirflowFailException, match="nothing was sent"):
            operator(trade_no=trade_no).execute(context(vexora))  # type: ignore[arg-type]
        assert vexora.asked == []

    def test_an_integer_business_key_is_its_text(self, vexora: FakeVexora) -> None:
        assert run(vexora, trade_no=4711)["trade_no"] == "4711"

    def test_derived_trade_number_is_stable_per_task_instance(self, vexora: FakeVexora) -> None:
        first = run(vexora, trade_no=None)
        again = run(vexora, context(vexora, store=Store(vexora.store or {})), trade_no=None)
        derived = derive_trade_no("pay", "manual__1", "create", -1)
        assert first["trade_no"] == again["trade_no"] == derived
        assert (first["created"], again["created"]) == (True, False)
        assert len(derived) == 32
        assert derived.isalnum()
        others = {derive_trade_no("pay", "manual__1", "create", i) for i in range(50)}
        others |= {
            derive_trade_no("pay", "manual__2", "create", 0),
            derive_trade_no("pay2", "manual__1", "create", 0),
        }
        assert len(others) == 52

    def test_each_map_index_gets_its_own_key(self, vexora: FakeVexora) -> None:
        made = [run(vexora, context(vexora, map_index=i), trade_no=None)["trade_no"] for i in range(3)]
        assert len(set(made)) == 3

    def test_the_same_trade_number_again_creates_nothing(self, vexora: FakeVexora) -> None:
        store = Store()
        assert run(vexora, context(vexora, store=store))["created"] is True
        assert run(vexora, context(vexora, store=store))["created"] is False
        assert len(vexora.payouts) == 1

    @pytest.mark.parametrize(
        ("earlier_code", "goes_on"), [(None, True), (FAILED, True), (PENDING, False), (SUCCESS, False)]
    )
    def test_a_trade_number_that_changed_between_tries(
        self, vexora: FakeVexora, earlier_code: str | None, goes_on: bool
    ) -> None:
        store = Store({STATE_KEY: {"trade_no": "PO-OLD", "amount": "150.00"}})
        if earlier_code is not None:
            vexora.payouts["PO-OLD"] = payout("PO-OLD", earlier_code)
        ctx = context(vexora, store=store)
        if goes_on:
            assert run(vexora, ctx, trade_no="PO-NEW")["trade_no"] == "PO-NEW"
            assert store[STATE_KEY] == {"trade_no": "PO-NEW", "amount": "150.00"}
        else:
            with pytest.raises(AirflowFailException, match=r"'PO-OLD'.*'PO-NEW'.*refusing"):
                run(vexora, ctx, trade_no="PO-NEW")
            assert ("create", "PO-NEW") not in vexora.asked
            assert store[STATE_KEY]["trade_no"] == "PO-OLD"
        assert vexora.asked[0] == ("find", "PO-OLD")

    def test_an_earlier_trade_number_with_spaces_is_never_guessed(self, vexora: FakeVexora) -> None:
        # Recorded by a version that sent trade numbers unstripped: a lookup now would miss it.
        store = Store({STATE_KEY: {"trade_no": " PO-OLD ", "amount": "150.00"}})
        with pytest.raises(AirflowFailException, match=r"' PO-OLD '.*cannot be\s+checked safely"):
            run(vexora, context(vexora, store=store), trade_no="PO-NEW")
        assert vexora.asked == []  # nothing looked up, nothing created

    def test_without_a_task_state_store_the_trade_number_still_guards(
        self, vexora: FakeVexora, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ctx = context(vexora)
        del ctx["task_state_store"]
        assert run(vexora, ctx)["created"] is True
        assert run(vexora, ctx)["created"] is False
        assert "No task_state_store" in capsys.readouterr().out

    @pytest.mark.parametrize(
        "error",
        [
            VexoraPayoutUnknownError("create got HTTP 502, the query failed", trade_no="PO-1"),
            VexoraHTTPError(http_status=503, trade_no="PO-1", transient=True),
        ],
        ids=lambda e: type(e).__name__,
    )
    def test_hook_errors_stay_typed_for_the_retry_policy(
        self, vexora: FakeVexora, error: VexoraError
    ) -> None:
        vexora.create_error = error
        with pytest.raises(type(error)) as raised:
            run(vexora)
        assert not isinstance(raised.value, AirflowFailException)
        assert VEXORA_RETRY_POLICY.evaluate(raised.value, 1, 4).action.value == "default"

    @pytest.mark.parametrize("mode", WAIT_MODES[1:])
    def test_waits_until_final(self, vexora: FakeVexora, mode: dict[str, Any]) -> None:
        vexora.polls["PO-1"] = [PENDING, PENDING, SUCCESS]
        assert run(vexora, **mode) == xcom("PO-1", SUCCESS, "success", created=True)
        assert vexora.asked.count(("status", "PO-1")) == 3

    @pytest.mark.parametrize("mode", WAIT_MODES[1:])
    def test_failed_polls_in_a_row_fail_the_try_retryably(
        self, vexora: FakeVexora, mode: dict[str, Any]
    ) -> None:
        vexora.polls["PO-1"] = [VexoraHTTPError(http_status=503, trade_no="PO-1", transient=True)]
        with pytest.raises(AirflowException) as raised:
            run(vexora, max_consecutive_failures=2, **mode)
        assert not isinstance(raised.value, AirflowFailException)
        assert "HTTP 503" in str(raised.value)
        assert len(vexora.payouts) == 1

    @pytest.mark.parametrize("mode", WAIT_MODES[1:])
    def test_refused_credentials_while_waiting(self, vexora: FakeVexora, mode: dict[str, Any]) -> None:
        vexora.polls["PO-1"] = [VexoraAuthError("refused", code="8000", trade_no="PO-1")]
        with pytest.raises(VexoraAuthError):
            run(vexora, **mode)

    @pytest.mark.parametrize("mode", WAIT_MODES[1:])
    def test_wait_timeout_fails_without_retries(self, vexora: FakeVexora, mode: dict[str, Any]) -> None:
        vexora.polls["PO-1"] = [PENDING]
        with pytest.raises(AirflowFailException, match="not final"):
            run(vexora, wait_timeout=0, **mode)

    def test_deferral_carries_plain_data(self, vexora: FakeVexora) -> None:
        with pytest.raises(TaskDeferred) as deferred:
            operator(wait_for_completion=True, deferrable=True, poll_interval=5).execute(context(vexora))  # type: ignore[arg-type]
        trigger = deferred.value.trigger
        assert isinstance(trigger, PayoutStatusTrigger)
        assert (trigger.trade_nos, trigger.poll_interval, trigger.known_statuses) == (["PO-1"], 5.0, [])
        assert deferred.value.kwargs == {"created": True}
        assert deferred.value.method_name == "execute_complete"

    @pytest.mark.parametrize(
        ("event", "error", "words"),
        [
            (
                {"status": "timeout", "message": "deadline passed", "statuses": []},
                AirflowFailException,
                "in time",
            ),
            (
                {"status": "error", "message": "x", "statuses": [], "retryable": False},
                AirflowFailException,
                "x",
            ),
            (
                {"status": "error", "message": "HTTP 503", "statuses": [], "retryable": True},
                AirflowException,
                "503",
            ),
            ({"status": "nope", "message": "", "statuses": []}, AirflowException, "invalid event"),
        ],
    )
    def test_execute_complete_maps_every_event(self, event: dict[str, Any], error: type, words: str) -> None:
        with pytest.raises(error, match=words) as raised:
            operator().execute_complete({}, event, created=True)  # type: ignore[arg-type]
        if error is AirflowException:
            assert not isinstance(raised.value, AirflowFailException)

    def test_mapped_over_payouts(self) -> None:
        with DAG("d", schedule=None) as dag:
            CreatePayoutOperator.partial(task_id="create", wait_for_completion=True).expand_kwargs(
                [{"trade_no": "A", "amount": "1.00", "fields": FIELDS}, {"trade_no": "B", "amount": "2.00"}]
            )
        assert dag.get_task("create").partial_kwargs["wait_for_completion"] is True


class TestDeriveTradeNo:
    def test_fits_vexora(self) -> None:
        assert derive_trade_no("d" * 250, "r" * 250, "t" * 250, 1023).startswith("AF")
        assert len(derive_trade_no("d", "r", "t", -1)) == 32


def test_decimal_amounts_are_sent_exactly(vexora: FakeVexora) -> None:
    assert run(vexora, amount=Decimal("1.5E+3"))["amount"] == "1500"
