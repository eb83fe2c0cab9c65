"""Sensor that waits until Vexora payouts are final, by poking or deferred to the triggerer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from vexora_provider._text import count
from vexora_provider.exceptions import VexoraAuthError, VexoraError, warn_deprecated
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutQueryError, PayoutStatus
from vexora_provider.policy import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_SUCCESS_STATES,
    PayoutWatch,
    StatusDict,
    SuccessPolicy,
    Verdict,
)
from vexora_provider.trade_nos import (
    LiteralTradeNosRendering,
    TradeNos,
    coerce_trade_nos,
    refuse_literal_mistakes,
)
from vexora_provider.triggers.payout_status import PayoutStatusTrigger, event_verdict

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context, XComArg

__all__ = ["PayoutStatusSensor"]

# The trigger ends the wait at the deadline itself, after one last poll that may take a retry
# budget (tries x timeouts + backoff). The deferral's own timeout is only the backstop for a task
# no triggerer runs, so it comes later: were it equal, Airflow could cut that last poll short and
# a payout settled just in time would still time out.
DEFERRAL_GRACE = timedelta(minutes=5)

# task_state_store key that carries the failed-poll count across reschedules (new process each poke).
# The store is scoped to the task, not the try, so the value names its try: a retry starts afresh.
FAILED_POLLS_KEY = "vexora_failed_polls"


class PayoutStatusSensor(LiteralTradeNosRendering, BaseSensorOperator):
    """
    Wait until every listed Vexora payout is final, then return the statuses as XCom.

    Returns one status dict for a single trade-number string, or a list of dicts in input order
    for a list: ``trade_no``, ``platform_trade_no``, ``state``, ``status_code``, ``message``,
    amounts as strings and ``success_time`` in ISO 8601.

    A payout final in a state outside ``success_states`` fails the task at once with
    ``AirflowFailException`` (no retries), naming the trade, code and message; so does a status
    code Vexora does not document (map it in the connection's ``status_map`` extra), and an error
    no poll can fix (a malformed trade number, a bad connection); refused credentials fail it
    with :class:`~vexora_provider.exceptions.VexoraAuthError` (no retries either). A poll whose
    query fails otherwise, after the hook's own retries, only fails the task after
    ``max_consecutive_failures`` failed polls in a row.

    :param trade_nos: one trade number, or a list (templated; an ``XComArg`` works and wires the
        dependency). The provider's trade-number rule applies: entries are stripped, duplicates
        watched once, and a mistake visible when the DAG is parsed (a string such as
        ``"A,B"``: did you mean a list?) is refused then; an entry that is not a trade number
        fails the task, naming it.
    :param trade_no: deprecated alias of ``trade_nos`` (warns with
        :class:`~vexora_provider.exceptions.VexoraDeprecationWarning`).
    :param vexora_conn_id: the ``vexora`` connection.
    :param success_states: terminal states that count as success (``success``, ``partial``,
        ``failed``); default ``success`` and ``partial``.
    :param fail_on_failed: whether a payout final outside ``success_states`` fails the task;
        when ``False`` the sensor succeeds and its XCom shows the state.
    :param max_consecutive_failures: failed polls in a row before the task fails (retryable).
    :param deferrable: wait in the triggerer instead of a worker slot; default from
        ``[operators] default_deferrable``.
    :param poke_interval: seconds between polls (default 60); ``exponential_backoff`` and
        ``max_wait`` apply in both modes.
    """

    template_fields: Sequence[str] = ("trade_nos", "vexora_conn_id")
    template_fields_renderers = {"trade_nos": "py"}
    ui_color = "#d8ecf3"

    def __init__(
        self,
        *,
        trade_nos: str | Sequence[str] | XComArg | None = None,
        trade_no: str | Sequence[str] | XComArg | None = None,
        vexora_conn_id: str = VexoraHook.default_conn_name,
        success_states: Sequence[str] = DEFAULT_SUCCESS_STATES,
        fail_on_failed: bool = True,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        if trade_no is not None:
            if trade_nos is not None:
                raise ValueError("give trade_nos only; trade_no is its deprecated alias")
            warn_deprecated(
                "PayoutStatusSensor(trade_no=...) is deprecated: use trade_nos=..., "
                "which takes one trade number or a list the same way"
            )
            trade_nos = trade_no
        if trade_nos is None:
            raise ValueError("trade_nos is required: one trade number, a list, or an XComArg")
        refuse_literal_mistakes(trade_nos, param="trade_nos")
        self.policy = SuccessPolicy.from_names(success_states, fail_on_failed=fail_on_failed)
        if max_consecutive_failures < 1:
            raise ValueError("max_consecutive_failures must be at least 1")
        self.trade_nos = trade_nos
        self.vexora_conn_id = vexora_conn_id
        self.success_states = self.policy.success_state_names
        self.fail_on_failed = fail_on_failed
        self.max_consecutive_failures = max_consecutive_failures
        self.deferrable = deferrable
        self._watch: PayoutWatch | None = None
        self._coerced_trade_nos: TradeNos | None = None

    @cached_property
    def hook(self) -> VexoraHook:
        """The hook for ``vexora_conn_id`` (no connection lookup until the first query)."""
        return VexoraHook(vexora_conn_id=self.vexora_conn_id, hook_lineage=False)  # reports its own

    # OpenLineage: called by the OpenLineage provider's listener, when it is installed ------------

    def get_openlineage_facets_on_start(self) -> OperatorLineage[Any, Any] | None:
        """The merchant's payouts as the input (``None`` without the OpenLineage provider)."""
        try:
            from vexora_provider.lineage.datasets import payouts_lineage
        except ImportError:
            return None
        return payouts_lineage(self.hook.config.merchant_no)  # type: ignore[no-any-return]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any] | None:
        """The merchant's payouts as the input, also after a deferral (the trigger reports nothing)."""
        return self.get_openlineage_facets_on_start()

    def _close_hook(self) -> None:
        if "hook" in self.__dict__:
            self.hook.close()

    def _coerced(self) -> TradeNos:
        """The rendered ``trade_nos`` after the trade-number rule; a mistake fails the task."""
        if self._coerced_trade_nos is None:  # read once: an XCom sequence is pulled on each pass
            coerced = coerce_trade_nos(self.trade_nos)  # TradeNosError fails the task, no retries
            if coerced.invalid:
                raise AirflowFailException(f"trade_nos: {coerced.invalid_summary()}")
            self._coerced_trade_nos = coerced
        return self._coerced_trade_nos

    def _get_watch(self, context: Context) -> PayoutWatch:
        if self._watch is None:
            coerced = self._coerced()
            if coerced.duplicates:
                self.log.info(
                    "%s given more than once: each is watched once", count(coerced.duplicates, "trade number")
                )
            self._watch = PayoutWatch(coerced.trade_nos, self.policy, self.max_consecutive_failures)
            if self.reschedule:
                self._watch.failed_polls = self._stored_failed_polls(context)
        return self._watch

    @staticmethod
    def _try_number(context: Context) -> int | None:
        return getattr(context.get("ti"), "try_number", None)

    def _stored_failed_polls(self, context: Context) -> int:
        store = context.get("task_state_store")
        if store is None:
            return 0
        try:
            value = store.get(FAILED_POLLS_KEY, None)
        except Exception:
            self.log.warning("Cannot read the failed-poll count; counting from zero", exc_info=True)
            return 0
        if not isinstance(value, dict) or value.get("try_number") != self._try_number(context):
            return 0  # nothing stored, or left by an earlier try
        count = value.get("failed_polls")
        return count if isinstance(count, int) else 0

    def _store_failed_polls(self, context: Context, count: int) -> None:
        store = context.get("task_state_store")
        if store is None:
            return
        try:
            store.set(FAILED_POLLS_KEY, {"try_number": self._try_number(context), "failed_polls": count})
        except Exception:
            self.log.warning("Cannot save the failed-poll count", exc_info=True)

    def poke(self, context: Context) -> PokeReturnValue:
        """Query every payout not final yet and judge the answers with the success policy."""
        watch = self._get_watch(context)
        if not watch.trade_nos:
            self.log.warning("trade_nos is empty: nothing to wait for")
            return PokeReturnValue(is_done=True, xcom_value=[])
        results: list[PayoutStatus | PayoutQueryError] = []
        for trade_no in watch.to_poll():
            try:
                status = self.hook.get_payout_status(trade_no)
            except VexoraError as error:
                results.append(PayoutQueryError(trade_no, error))
                if error.permanence.is_permanent:
                    break  # the verdict is settled; querying the rest would only repeat it
                continue
            if status.is_terminal:
                self.log.info("Trade %s is %s (status %s)", trade_no, status.state.value, status.status_code)
            results.append(status)
        previous_failures = watch.failed_polls
        verdict = watch.record(results)
        if self.reschedule and watch.failed_polls != previous_failures:
            self._store_failed_polls(context, watch.failed_polls)
        return self._conclude(verdict, watch)

    def _conclude(self, verdict: Verdict, watch: PayoutWatch) -> PokeReturnValue:
        if verdict.outcome == "success":
            return PokeReturnValue(is_done=True, xcom_value=self._xcom(verdict.statuses))
        if isinstance(verdict.cause, VexoraAuthError):
            raise verdict.cause  # refused credentials: the typed error, failing without retries
        if verdict.outcome == "failed" or (verdict.outcome == "error" and not verdict.retryable):
            raise AirflowFailException(verdict.message)
        if verdict.outcome == "error":
            # Deferrable mode turns every error into a skip under soft_fail; poke mode must agree.
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {verdict.message}")
            raise AirflowException(verdict.message)
        if verdict.message:
            self.log.warning("%s; %s", verdict.message, watch.pending_summary())
        else:
            self.log.info("Waiting: %s", watch.pending_summary())
        return PokeReturnValue(is_done=False)

    def _xcom(self, statuses: list[StatusDict]) -> StatusDict | list[StatusDict]:
        return statuses[0] if self._coerced().single else statuses

    def execute(self, context: Context) -> Any:
        """Poke (or reschedule) as usual; when deferrable, poke once and defer if not final."""
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as timeout:
                # Name what is still pending, as the deferrable mode's timeout does.
                if self._watch is None:
                    raise
                raise AirflowSensorTimeout(f"{timeout}; {self._watch.pending_summary()}") from None
            finally:
                self._close_hook()
        deadline = time.time() + self.timeout
        try:
            first = self.poke(context)
        except AirflowSkipException:
            raise
        except AirflowException as error:
            # The same conversion BaseSensorOperator applies to pokes and to execute_complete.
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail/never_fail: {error}") from error
            raise
        finally:
            self._close_hook()
        if first.is_done:
            return first.xcom_value
        watch = self._get_watch(context)
        self.defer(
            trigger=PayoutStatusTrigger(
                trade_nos=list(watch.trade_nos),
                vexora_conn_id=self.vexora_conn_id,
                end_time=deadline,
                poll_interval=self.poke_interval,
                exponential_backoff=self.exponential_backoff,
                max_wait=self.max_wait.total_seconds() if self.max_wait else None,
                success_states=self.success_states,
                fail_on_failed=self.fail_on_failed,
                max_consecutive_failures=self.max_consecutive_failures,
                known_statuses=list(watch.terminal.values()),
                failed_polls=watch.failed_polls,
            ),
            method_name="execute_complete",
            # Expiry of the deferral becomes AirflowSensorTimeout in BaseSensorOperator.
            timeout=timedelta(seconds=max(deadline - time.time(), 0.0)) + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: return the statuses on success, raise on anything else."""
        status, verdict = event_verdict(event)
        if status == "timeout":
            raise AirflowSensorTimeout(f"Sensor has timed out: {verdict.message}")
        if verdict.outcome == "success":
            self.log.info("Payouts final: %s", verdict.message)
            return self._xcom(verdict.statuses)
        if verdict.cause is not None:
            raise verdict.cause
        if verdict.outcome == "failed" or not verdict.retryable:
            raise AirflowFailException(verdict.message)
        raise AirflowException(verdict.message)
