"""Create a Vexora payout from a DAG, never twice for one trade number, and optionally wait for it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from vexora_provider.exceptions import (
    VexoraAuthError,
    VexoraError,
    VexoraInvalidPayoutError,
    VexoraInvalidTradeNoError,
    VexoraPayoutExistsError,
)
from vexora_provider.hooks._create import PayoutRequest
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutQueryError, PayoutState, PayoutStatus
from vexora_provider.policy import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_SUCCESS_STATES,
    PayoutWatch,
    StatusDict,
    SuccessPolicy,
    Verdict,
    next_poll_delay,
)
from vexora_provider.retry_policy import VEXORA_RETRY_POLICY
from vexora_provider.sensors.payout_status import DEFERRAL_GRACE
from vexora_provider.triggers.payout_status import PayoutStatusTrigger, event_verdict

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context, RetryPolicy

__all__ = ["STATE_KEY", "CreatePayoutOperator", "derive_trade_no"]

#: ``task_state_store`` key holding the trade number (and amount) this task instance works on.
#: Never rename it: tries already running read it.
STATE_KEY = "vexora_create_payout"
NEW_KEY_HINT = (
    "this task never creates a second payout for one trade number; to pay again, a person must "
    "choose a new trade_no"
)

XCom = dict[str, str | bool | None]


def derive_trade_no(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """
    Return the trade number of a task instance that names none: the same on every try.

    ``AF`` and 30 hex digits of the SHA-256 of the four names (32 characters, Vexora's limit).
    """
    key = "\x1f".join((dag_id, run_id, task_id, str(map_index)))
    return "AF" + hashlib.sha256(key.encode()).hexdigest()[:30].upper()


class _StateStore(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class CreatePayoutOperator(BaseOperator):
    """
    Create one Vexora payout, at most once per trade number, on every try; optionally wait for it.

    Every try follows the same decision table: the trade number is written to the task state
    store, then queried; a payout that exists is never created again (the task returns or waits
    for it); the create is sent only when Vexora says it holds no such payout, and an unclear
    answer is settled by querying again before anything else is sent. A payout that failed, or has
    a status code Vexora does not document, fails the task with ``AirflowFailException`` naming
    the trade: a new payout needs a new trade number, chosen by a person.

    Returns the payout as :class:`~vexora_provider.sensors.payout_status.PayoutStatusSensor` does
    for one trade (``trade_no``, ``platform_trade_no``, ``state``, ``status_code``, ``message``,
    amounts as strings, ``success_time``), plus ``created``: whether this try created it.

    :param amount: the amount: plain decimal text such as ``"1500.00"``, a ``Decimal`` or an
        ``int`` (templated); floats are refused.
    :param fields: the region's beneficiary fields, all strings (templated).
    :param trade_no: your unique key for this payout, at most 32 characters once surrounding
        whitespace is removed (templated; an ``int`` is taken as its digits), e.g.
        ``"INV-{{ params.invoice_id }}"``. Omitted: derived from the dag id, run id, task id and
        map index (:func:`derive_trade_no`), identical on every try of the task instance.
    :param notify_url: where Vexora sends status callbacks (templated).
    :param remark: free text kept with the payout (templated).
    :param vexora_conn_id: the ``vexora`` connection (templated).
    :param wait_for_completion: wait until the payout is final, like the sensor.
    :param deferrable: wait in the triggerer instead of a worker slot; default from
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between status queries while waiting.
    :param exponential_backoff: double the wait after each poll, up to ``max_wait``.
    :param max_wait: the longest wait between polls, in seconds.
    :param wait_timeout: how long to wait for a final state before failing the task (the payout
        itself goes on).
    :param success_states: final states that count as success (``success``, ``partial``,
        ``failed``).
    :param fail_on_failed: whether a payout final outside ``success_states`` fails the task.
    :param max_consecutive_failures: failed status queries in a row, while waiting, before the
        task fails (and may retry).
    :param retry_policy: Airflow's task retry policy; by default
        :data:`~vexora_provider.retry_policy.VEXORA_RETRY_POLICY` (no retries on errors no retry
        can fix).
    """

    template_fields: Sequence[str] = (
        "trade_no",
        "amount",
        "fields",
        "notify_url",
        "remark",
        "vexora_conn_id",
    )
    template_fields_renderers = {"fields": "json"}
    ui_color = "#fde9d9"

    def __init__(
        self,
        *,
        amount: Decimal | str | int,
        fields: Mapping[str, str] | None = None,
        trade_no: str | None = None,
        notify_url: str | None = None,
        remark: str | None = None,
        vexora_conn_id: str = VexoraHook.default_conn_name,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60.0,
        exponential_backoff: bool = False,
        max_wait: float | None = None,
        wait_timeout: timedelta | float = timedelta(days=1),
        success_states: Sequence[str] = DEFAULT_SUCCESS_STATES,
        fail_on_failed: bool = True,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        retry_policy: RetryPolicy | None = VEXORA_RETRY_POLICY,
        **kwargs: Any,
    ) -> None:
        super().__init__(retry_policy=retry_policy, **kwargs)
        self.policy = SuccessPolicy.from_names(success_states, fail_on_failed=fail_on_failed)
        if poll_interval < 0 or max_consecutive_failures < 1:
            raise ValueError("poll_interval must not be negative and max_consecutive_failures at least 1")
        self.amount = amount
        self.fields = fields
        self.trade_no = trade_no
        self.notify_url = notify_url
        self.remark = remark
        self.vexora_conn_id = vexora_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.exponential_backoff = exponential_backoff
        self.max_wait = max_wait
        self.wait_timeout = (
            wait_timeout if isinstance(wait_timeout, timedelta) else timedelta(seconds=wait_timeout)
        )
        self.success_states = self.policy.success_state_names
        self.fail_on_failed = fail_on_failed
        self.max_consecutive_failures = max_consecutive_failures
        self._created: bool | None = None  # whether this try created the payout (for lineage)

    @cached_property
    def hook(self) -> VexoraHook:
        """The hook for ``vexora_conn_id`` (no connection lookup until the first request)."""
        return VexoraHook(vexora_conn_id=self.vexora_conn_id, hook_lineage=False)  # reports its own

    # OpenLineage: called by the OpenLineage provider's listener, when it is installed ------------

    def get_openlineage_facets_on_start(self) -> OperatorLineage[Any, Any] | None:
        """The merchant's payouts as the output (``None`` without the OpenLineage provider)."""
        return self._lineage()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any] | None:
        """The payouts as the output, with ``rowCount`` 1 when this try created the payout, else 0."""
        return self._lineage()

    def _lineage(self) -> OperatorLineage[Any, Any] | None:
        try:
            from vexora_provider.lineage.datasets import payouts_lineage
        except ImportError:
            return None
        created = None if self._created is None else int(self._created)
        lineage = payouts_lineage(self.hook.config.merchant_no, output=True, created=created)
        return lineage  # type: ignore[no-any-return]

    # the decision table ---------------------------------------------------------------------

    def execute(self, context: Context) -> XCom:
        """Find or create the payout (see the class docstring), then return it or wait for it."""
        request = self._request(context)
        try:
            self._remember(context, request)
            status, created = self._find_or_create(request)
            self._created = created
            return self._after_create(status, created)
        finally:
            if "hook" in self.__dict__:
                self.hook.close()

    def _request(self, context: Context) -> PayoutRequest:
        trade_no: object = self.trade_no
        if trade_no is None:
            ti = context["ti"]
            map_index = ti.map_index if ti.map_index is not None else -1
            trade_no = derive_trade_no(ti.dag_id, ti.run_id, ti.task_id, map_index)
            self.log.info("Trade number %s derived from the dag, run, task and map index", trade_no)
        try:
            return PayoutRequest.build(
                trade_no=trade_no,
                amount=self.amount,
                fields=self.fields,
                notify_url=self.notify_url,
                remark=self.remark,
            )
        except (VexoraInvalidPayoutError, VexoraInvalidTradeNoError) as error:
            raise AirflowFailException(f"{error}; nothing was sent") from None

    def _remember(self, context: Context, request: PayoutRequest) -> None:
        """Record the trade number before anything is sent; refuse to switch to another one."""
        store: _StateStore | None = context.get("task_state_store")
        if store is None:
            self.log.warning("No task_state_store in this context: relying on the trade number alone")
            return
        record = {"trade_no": request.trade_no, "amount": request.amount}
        earlier = store.get(STATE_KEY, None)
        if isinstance(earlier, dict) and earlier.get("trade_no") not in (None, request.trade_no):
            self._check_earlier(str(earlier["trade_no"]), request)
        if earlier != record:
            store.set(STATE_KEY, record)

    def _check_earlier(self, earlier: str, request: PayoutRequest) -> None:
        """An earlier try worked on another trade number: go on only if that one did not pay."""
        if earlier != earlier.strip():
            # Recorded before trade numbers were stripped: the gateway holds it with the spaces,
            # and a lookup now would strip them and miss it. Never guess with money.
            raise AirflowFailException(
                f"an earlier try of this task recorded trade number {earlier!r}, with surrounding "
                f"whitespace that trade numbers no longer keep; whether that payout exists cannot be "
                f"checked safely: look it up at Vexora, then clear the task state key {STATE_KEY!r}"
            )
        found = self.hook.find_payout(earlier)
        if found is not None and found.state is not PayoutState.FAILED:
            raise AirflowFailException(
                f"an earlier try of this task created payout {earlier!r} ({found.state.value}, status "
                f"{found.status_code}), but this try renders trade_no {request.trade_no!r}: refusing to "
                "create a second payout; render the same trade_no on every try (a business key)"
            )
        self.log.warning(
            "An earlier try of this task worked on trade %s, which %s; going on with trade %s",
            earlier,
            "Vexora does not hold" if found is None else "failed",
            request.trade_no,
        )

    def _find_or_create(self, request: PayoutRequest) -> tuple[PayoutStatus, bool]:
        self.log.info("Creating Vexora payout %s for %s unless it exists", request.trade_no, request.amount)
        try:
            status = self.hook.create_payout(
                trade_no=request.trade_no,
                amount=request.amount,
                fields=self.fields or {},
                notify_url=self.notify_url,
                remark=self.remark,
            )
        except VexoraPayoutExistsError as exists:
            status = exists.existing
            self.log.info(
                "Vexora payout %s already exists (%s, status %s): not created again",
                request.trade_no,
                status.state.value,
                status.status_code,
            )
            _check_amount(status, request)
            return status, False
        return status, True

    def _after_create(self, status: PayoutStatus, created: bool) -> XCom:
        watch = self._watch([status.trade_no])
        verdict = watch.record([status])
        if verdict.done or not self.wait_for_completion:
            if verdict.outcome == "failed":
                raise AirflowFailException(f"{verdict.message}; {NEW_KEY_HINT}")
            return _xcom(status.to_dict(), created)
        deadline = time.time() + self.wait_timeout.total_seconds()
        if self.deferrable:
            self.defer(
                trigger=PayoutStatusTrigger(
                    trade_nos=[status.trade_no],
                    vexora_conn_id=self.vexora_conn_id,
                    end_time=deadline,
                    poll_interval=self.poll_interval,
                    exponential_backoff=self.exponential_backoff,
                    max_wait=self.max_wait,
                    success_states=self.success_states,
                    fail_on_failed=self.fail_on_failed,
                    max_consecutive_failures=self.max_consecutive_failures,
                ),
                method_name="execute_complete",
                kwargs={"created": created},
                timeout=timedelta(seconds=max(deadline - time.time(), 0.0)) + DEFERRAL_GRACE,
            )
        return self._poll(watch, created, deadline)

    # waiting --------------------------------------------------------------------------------

    def _watch(self, trade_nos: list[str]) -> PayoutWatch:
        return PayoutWatch(trade_nos, self.policy, self.max_consecutive_failures)

    def _poll(self, watch: PayoutWatch, created: bool, deadline: float) -> XCom:
        """Wait in the worker, querying like the sensor's poke mode."""
        (trade_no,) = watch.trade_nos
        polls = 1  # the create's answer was the first look
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AirflowFailException(
                    f"payout {trade_no!r} is not final after {self.wait_timeout}: "
                    f"{watch.pending_summary()}; the payout goes on, a later check can wait for it"
                )
            delay = next_poll_delay(
                self.poll_interval,
                polls,
                exponential_backoff=self.exponential_backoff,
                max_wait=self.max_wait,
            )
            time.sleep(min(delay, left))
            result: PayoutStatus | PayoutQueryError
            try:
                result = self.hook.get_payout_status(trade_no)
            except VexoraError as error:
                result = PayoutQueryError(trade_no, error)
            polls += 1
            verdict = watch.record([result])
            if verdict.done:
                return self._conclude(verdict, created)
            if verdict.message:
                self.log.warning("%s; %s", verdict.message, watch.pending_summary())
            else:
                self.log.info("Waiting: %s", watch.pending_summary())

    def _conclude(self, verdict: Verdict, created: bool) -> XCom:
        if verdict.outcome == "success":
            return _xcom(verdict.statuses[0], created)
        if isinstance(verdict.cause, VexoraAuthError):
            raise verdict.cause
        if verdict.outcome == "failed":
            raise AirflowFailException(f"{verdict.message}; {NEW_KEY_HINT}")
        if not verdict.retryable:
            raise AirflowFailException(verdict.message)
        # The payout exists: a retry finds it by its trade number and waits again.
        raise AirflowException(verdict.message)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, created: bool = False
    ) -> XCom:
        """Resume after the trigger fired: return the payout on success, raise on anything else."""
        self._created = created
        status, verdict = event_verdict(event)
        if status == "timeout":
            raise AirflowFailException(f"payout not final in time: {verdict.message}; the payout goes on")
        return self._conclude(verdict, created)


def _xcom(status: StatusDict, created: bool) -> XCom:
    return {**status, "created": created}


def _check_amount(existing: PayoutStatus, request: PayoutRequest) -> None:
    """A payout found under our trade number must be ours: the same amount, where Vexora says it."""
    known = existing.order_amount
    if known is None and existing.state in (PayoutState.PENDING, PayoutState.SUCCESS):
        known = existing.amount  # the actual amount: only the ordered one while pending or paid in full
    if known is not None and known != Decimal(request.amount):
        raise AirflowFailException(
            f"trade {request.trade_no!r} already exists at Vexora for {known}, but this task asks for "
            f"{request.amount}: the trade number belongs to another payout, and nothing was sent; "
            f"{NEW_KEY_HINT}"
        )
