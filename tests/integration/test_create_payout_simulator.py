"""Creating payouts against the simulator on a real loopback socket: every fault, exactly one payout.

Everything below the operator is real: the connection comes from ``AIRFLOW_CONN_VEXORA_DEFAULT``,
the sync hook (httpx) and the async session (aiohttp) sign and send real HTTP, the trigger polls
over aiohttp, and the simulator really loses answers after accepting a create. A task's retries
are played the way Airflow plays them: one task state store shared by every try, a new operator
per try, the retry policy consulted on every failure, at most ``retries + 1`` tries.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import RetryAction
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from airflow.sdk.serde import deserialize, serialize

from vexora_provider.exceptions import VexoraPayoutExistsError, VexoraPayoutUnknownError, VexoraTransportError
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.operators.create_payout import CreatePayoutOperator
from vexora_provider.retry_policy import VEXORA_RETRY_POLICY
from vexora_provider.testing import VexoraSimulator
from vexora_provider.testing.server import SimulatorServer
from vexora_provider.testing.state import FAILED, PENDING
from vexora_provider.triggers.payout_status import PayoutStatusTrigger

pytestmark = pytest.mark.integration

SECRET = "create-it-secret-7c1d0e9a44"
FIELDS = {"accountNo": "0123456789", "bankCode": "058", "accountName": "Ada Obi"}
AMOUNT = "250.50"
# Short timeouts and two tries per call keep every fault quick; the flow's logic is the same.
EXTRA = {"read_timeout": 0.5, "connect_timeout": 0.5, "max_attempts": 2}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    with VexoraSimulator(seed=13, secret=SECRET, create_pending_polls=1) as sim, sim.serve() as served:
        monkeypatch.setenv("AIRFLOW_CONN_VEXORA_DEFAULT", served.airflow_connection("nigeria", **EXTRA))
        yield served


class Store(dict[str, Any]):
    """The task state store: one per task instance, shared by all its tries."""

    def set(self, key: str, value: Any) -> None:
        self[key] = json.loads(json.dumps(value))  # what the store keeps is JSON


@dataclass
class Run:
    """How a task instance ended: its state, its XCom (or last error), and how many tries it took."""

    state: str
    value: Any
    tries: int


async def _fire(trigger: PayoutStatusTrigger) -> dict[str, Any]:
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1
    return events[0]


def run_task(retries: int = 3, **kwargs: Any) -> Run:
    """Play one task instance the way Airflow would, with ``retries`` retries."""
    store = Store()
    error: BaseException | None = None
    for try_number in range(1, retries + 2):
        ti = SimpleNamespace(
            dag_id="pay", run_id="manual__1", task_id="create", map_index=0, try_number=try_number
        )
        context: dict[str, Any] = {"ti": ti, "task_state_store": store}
        make = lambda: CreatePayoutOperator(task_id="create", fields=FIELDS, amount=AMOUNT, **kwargs)  # noqa: E731
        try:
            try:
                return Run("success", make().execute(context), try_number)  # type: ignore[arg-type]
            except TaskDeferred as deferred:
                _, trigger_kwargs = deferred.trigger.serialize()
                event = asyncio.run(_fire(PayoutStatusTrigger(**deserialize(serialize(trigger_kwargs)))))
                resumed = make().resume_execution(
                    deferred.method_name, {**(deferred.kwargs or {}), "event": event}, context
                )  # type: ignore[arg-type]
                return Run("success", resumed, try_number)
        except Exception as failed:
            error = failed
            if isinstance(failed, AirflowFailException):
                return Run("failed", failed, try_number)
            if VEXORA_RETRY_POLICY.evaluate(failed, try_number, retries + 1).action is RetryAction.FAIL:
                return Run("failed", failed, try_number)
    return Run("failed", error, retries + 1)


Script = Callable[[VexoraSimulator], None]


def on_create(kind: str, nth: tuple[int, ...] = (1,), **options: Any) -> Script:
    return lambda sim: sim.add_fault(kind, "disbursements", trade_no="PO-1", nth=nth, **options) and None


def on_query(kind: str, nth: tuple[int, ...]) -> Script:
    return lambda sim: sim.add_fault(kind, "queryPayOutResult", trade_no="PO-1", nth=nth) and None


def both(*scripts: Script) -> Script:
    def apply(sim: VexoraSimulator) -> None:
        for script in scripts:
            script(sim)

    return apply


# name → (script, tries the task takes, whether the last try created the payout)
FAULTS: dict[str, tuple[Script, int, bool]] = {
    "accepted-then-reset": (on_create("accept_then_reset"), 1, True),
    "accepted-then-502": (on_create("accept_then_http_502"), 1, True),
    "accepted-then-timeout": (on_create("accept_then_hang", hang_seconds=3), 1, True),
    "timeout": (on_create("hang", hang_seconds=3), 1, True),
    "reset": (on_create("reset"), 1, True),
    "502": (on_create("http_502"), 1, True),
    "5000": (on_create("code_5000"), 1, True),
    "5000-on-every-create-of-a-try": (on_create("code_5000", nth=(1, 2)), 2, True),
    # Try 1: accepted, the answer lost, and the settling query fails too; try 2 finds the payout.
    "accepted-then-unsettled": (
        both(on_create("accept_then_http_502"), on_query("http_503", (2, 3))),
        2,
        False,
    ),
    # Try 2's first query misses the payout (a lagging read), so its create gets the duplicate answer.
    "duplicate-answer": (
        both(on_create("accept_then_reset"), on_query("http_503", (2, 3)), on_query("not_found", (4,))),
        2,
        False,
    ),
}
MODES = {
    "no-wait": {},
    "poke": {"wait_for_completion": True, "poll_interval": 0.05},
    "deferrable": {"wait_for_completion": True, "deferrable": True, "poll_interval": 0.05},
}


def assert_exactly_one_payout(sim: VexoraSimulator, trade_no: str = "PO-1") -> None:
    assert sim.creates(trade_no) == 1
    payout = sim.payout(trade_no)
    assert payout.order_amount == Decimal(AMOUNT)
    # One payout moved the balance: frozen while pending, paid once settled, given back on failure.
    spent = Decimal("1000000.00") - sim.merchant.available
    assert spent == (Decimal(0) if payout.status == FAILED else Decimal(AMOUNT)), payout.status
    assert sim.merchant.freeze == (Decimal(AMOUNT) if payout.status == PENDING else Decimal(0))


class TestCreatePayoutOperatorAgainstSimulator:
    @pytest.mark.parametrize("mode", sorted(MODES))
    @pytest.mark.parametrize("fault", sorted(FAULTS))
    def test_every_create_fault_ends_with_exactly_one_payout(
        self, server: SimulatorServer, fault: str, mode: str
    ) -> None:
        script, tries, created = FAULTS[fault]
        script(server.sim)
        run = run_task(trade_no="PO-1", **MODES[mode])
        assert run.state == "success", run.value
        assert run.tries == tries
        assert_exactly_one_payout(server.sim)
        xcom = run.value
        assert (xcom["trade_no"], xcom["created"]) == ("PO-1", created)
        assert xcom["state"] == ("pending" if mode == "no-wait" else "success")
        assert xcom["amount"] == AMOUNT
        assert xcom["platform_trade_no"] == server.sim.payout("PO-1").platform_trade_no
        leaked = SECRET in json.dumps(xcom)  # never ``assert SECRET not in ...``: it prints the secret
        assert not leaked, "the app secret is in the task's XCom value"

    @pytest.mark.parametrize("code", ["8001", "8000", "6001"])
    def test_the_duplicate_code_need_not_be_known(self, server: SimulatorServer, code: str) -> None:
        server.sim.gateway.duplicate_code = code
        FAULTS["duplicate-answer"][0](server.sim)
        run = run_task(trade_no="PO-1")
        assert (run.state, run.tries, run.value["created"]) == ("success", 2, False)
        assert_exactly_one_payout(server.sim)
        assert server.sim.stats()["outcomes"]["disbursements"] == {"accept_then_reset": 1, code: 1}

    def test_a_rerun_of_a_finished_task_creates_nothing(self, server: SimulatorServer) -> None:
        first = run_task(trade_no="PO-1", wait_for_completion=True, poll_interval=0.05)
        again = run_task(trade_no="PO-1", wait_for_completion=True, poll_interval=0.05)
        assert (first.value["created"], again.value["created"]) == (True, False)
        assert first.value["state"] == again.value["state"] == "success"
        assert_exactly_one_payout(server.sim)

    def test_a_failed_payout_fails_without_retries_or_a_second_payout(self, server: SimulatorServer) -> None:
        server.sim.add_payout("PO-1", "failed", pending_polls=1, created=False, message="INVALID_ACCOUNT")
        run = run_task(trade_no="PO-1", wait_for_completion=True, poll_interval=0.05)
        assert (run.state, run.tries) == ("failed", 1)
        assert "trade 'PO-1': payout failed (status 00029: INVALID_ACCOUNT)" in str(run.value)
        again = run_task(trade_no="PO-1")
        assert (again.state, again.tries) == ("failed", 1)
        assert_exactly_one_payout(server.sim)

    def test_a_gateway_that_never_answers_fails_every_try_and_pays_nothing(
        self, server: SimulatorServer
    ) -> None:
        server.sim.add_fault("http_502", "disbursements")
        run = run_task(trade_no="PO-1")
        assert (run.state, run.tries) == ("failed", 4)
        assert isinstance(run.value, VexoraPayoutUnknownError)
        assert server.sim.creates("PO-1") == 0
        assert server.sim.calls("PO-1", "disbursements") == 8  # two per try, each settled by a query


class TestVexoraHookCreateOverLoopback:
    """The hook's own create flow over both HTTP stacks (httpx sync, aiohttp async)."""

    @pytest.mark.parametrize("path", ["sync", "async"])
    @pytest.mark.parametrize(
        "kind",
        ["accept_then_reset", "accept_then_http_502", "accept_then_hang", "hang", "reset", "code_5000"],
    )
    def test_each_unclear_answer_is_settled_by_a_query(
        self, server: SimulatorServer, kind: str, path: str
    ) -> None:
        server.sim.add_fault(kind, "disbursements", nth=(1,), hang_seconds=3)
        hook = VexoraHook()
        create = dict(trade_no="PO-1", amount=AMOUNT, fields=FIELDS)
        status = (
            hook.create_payout(**create) if path == "sync" else asyncio.run(hook.acreate_payout(**create))
        )
        hook.close()
        assert status.trade_no == "PO-1"
        assert_exactly_one_payout(server.sim)
        with pytest.raises(VexoraPayoutExistsError):
            VexoraHook().create_payout(**create)
        assert server.sim.creates("PO-1") == 1

    @pytest.mark.parametrize("path", ["sync", "async"])
    def test_a_gateway_that_is_down_gets_nothing_sent(
        self, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch, path: str
    ) -> None:
        with socket.socket() as closed:  # a port nothing listens on
            closed.bind(("127.0.0.1", 0))
            down = f"http://127.0.0.1:{closed.getsockname()[1]}"
        monkeypatch.setenv(
            "AIRFLOW_CONN_VEXORA_DEFAULT", server.sim.airflow_connection(down, "nigeria", **EXTRA)
        )
        create = dict(trade_no="PO-1", amount=AMOUNT, fields=FIELDS)
        hook = VexoraHook()
        create_it = (
            (lambda: hook.create_payout(**create))
            if path == "sync"
            else (lambda: asyncio.run(hook.acreate_payout(**create)))
        )
        with pytest.raises(VexoraTransportError) as raised:
            create_it()
        assert raised.value.kind == "refused"
        assert server.sim.creates("PO-1") == 0
