"""Trigger that polls Vexora from the triggerer until every watched payout is final."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from vexora_provider.exceptions import VexoraAuthError, VexoraError
from vexora_provider.hooks.vexora import VexoraHook
from vexora_provider.models import PayoutQueryError, PayoutStatus
from vexora_provider.policy import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_SUCCESS_STATES,
    Outcome,
    PayoutWatch,
    SuccessPolicy,
    Verdict,
    next_poll_delay,
)
from vexora_provider.trade_nos import coerce_trade_nos

__all__ = ["TRIGGER_EVENT_STATUSES", "PayoutStatusTrigger", "event_verdict", "validate_event"]

#: The closed vocabulary of ``event["status"]``; anything else is a bug and is refused.
TRIGGER_EVENT_STATUSES = frozenset({"success", "failed", "error", "timeout"})

# Looked up at call time, so tests drive many polls without waiting (asyncio itself stays intact).
sleep = asyncio.sleep


def validate_event(event: object) -> dict[str, Any]:
    """
    Return the event if it is one this trigger can send, else raise ``ValueError`` saying why.

    :param event: the payload the task was resumed with.
    """
    if not isinstance(event, dict):
        raise ValueError(f"expected a trigger event dict, got {type(event).__name__}")
    status = event.get("status")
    if status not in TRIGGER_EVENT_STATUSES:
        raise ValueError(
            f"unknown trigger event status {status!r}; expected {sorted(TRIGGER_EVENT_STATUSES)}"
        )
    if not isinstance(event.get("message"), str) or not isinstance(event.get("statuses"), list):
        raise ValueError(f"trigger event {status!r} lacks its message or statuses")
    return event


def event_verdict(event: object) -> tuple[str, Verdict]:
    """
    Return a resumed task's event status and the :class:`Verdict` the event carries.

    The cause of refused credentials is restored as a :class:`VexoraAuthError`, so the task
    raises the same typed error as in poke mode.

    :param event: the payload the task was resumed with.
    :raises AirflowException: the event is not one this trigger sends.
    """
    try:
        checked = validate_event(event)
    except ValueError as error:
        raise AirflowException(f"PayoutStatusTrigger sent an invalid event: {error}") from None
    status, message = checked["status"], checked["message"]
    cause = VexoraAuthError(message, code="8000") if checked.get("error_type") == "VexoraAuthError" else None
    outcome: Outcome = "success" if status == "success" else "failed" if status == "failed" else "error"
    verdict = Verdict(
        outcome, message, checked["statuses"], retryable=bool(checked.get("retryable", True)), cause=cause
    )
    return status, verdict


class PayoutStatusTrigger(BaseTrigger):
    """
    Poll the status of Vexora payouts until all are final, a policy failure, an error or the deadline.

    Only read-only status queries run here, so a trigger restarted by the triggerer is harmless.
    It fires exactly one event: ``{"status": ..., "message": ..., "statuses": [...], "retryable": ...}``
    with ``status`` in :data:`TRIGGER_EVENT_STATUSES` and the statuses as plain dicts in input order;
    an ``error`` caused by refused credentials also carries ``"error_type": "VexoraAuthError"``.

    :param trade_nos: the trade numbers to watch (a list; the provider's trade-number rule applies).
    :param vexora_conn_id: the ``vexora`` connection to query with.
    :param end_time: wall-clock deadline as epoch seconds (``time.time()``); a ``timeout`` event
        follows one last poll at or after it.
    :param poll_interval: seconds between polls.
    :param exponential_backoff: double the wait after each poll.
    :param max_wait: upper bound of a wait when backing off, in seconds.
    :param success_states: terminal states that count as success.
    :param fail_on_failed: whether a payout final outside ``success_states`` ends with ``failed``.
    :param max_consecutive_failures: failed polls in a row before an ``error`` event.
    :param known_statuses: statuses already final (plain dicts), not polled again.
    :param failed_polls: failed polls in a row already seen before deferring.
    """

    #: Whether the triggers of one triggerer share one connection pool per connection (up to the
    #: session's 32 connections, kept alive from poll to poll) instead of opening one pool each.
    share_pool: bool = True

    def __init__(
        self,
        *,
        trade_nos: Sequence[str],
        vexora_conn_id: str,
        end_time: float,
        poll_interval: float = 60.0,
        exponential_backoff: bool = False,
        max_wait: float | None = None,
        success_states: Sequence[str] = DEFAULT_SUCCESS_STATES,
        fail_on_failed: bool = True,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        known_statuses: Sequence[Mapping[str, str | None]] = (),
        failed_polls: int = 0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        coerced = coerce_trade_nos(trade_nos)
        if coerced.single or not coerced.trade_nos:
            raise ValueError("trade_nos must be a non-empty list of trade numbers")
        if coerced.invalid:
            raise ValueError(f"trade_nos: {coerced.invalid_summary()}")
        if poll_interval < 0:
            raise ValueError("poll_interval must not be negative")
        if max_consecutive_failures < 1:
            raise ValueError("max_consecutive_failures must be at least 1")
        # Built (and so validated) now: a bad kwarg fails at defer time, not in the triggerer.
        self._policy = SuccessPolicy.from_names(success_states, fail_on_failed=fail_on_failed)
        self.trade_nos = list(coerced.trade_nos)
        self.vexora_conn_id = vexora_conn_id
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.exponential_backoff = bool(exponential_backoff)
        self.max_wait = None if max_wait is None else float(max_wait)
        self.success_states = [str(s) for s in success_states]
        self.fail_on_failed = fail_on_failed
        self.max_consecutive_failures = int(max_consecutive_failures)
        self.known_statuses = [dict(s) for s in known_statuses]
        self.failed_polls = int(failed_polls)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize the trigger's plain-data kwargs and classpath."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "trade_nos": self.trade_nos,
                "vexora_conn_id": self.vexora_conn_id,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "exponential_backoff": self.exponential_backoff,
                "max_wait": self.max_wait,
                "success_states": self.success_states,
                "fail_on_failed": self.fail_on_failed,
                "max_consecutive_failures": self.max_consecutive_failures,
                "known_statuses": self.known_statuses,
                "failed_polls": self.failed_polls,
            },
        )

    def _watch(self) -> PayoutWatch:
        return PayoutWatch(
            trade_nos=self.trade_nos,
            policy=self._policy,
            max_consecutive_failures=self.max_consecutive_failures,
            terminal={str(s["trade_no"]): s for s in self.known_statuses},
            failed_polls=self.failed_polls,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the watch is decided, then fire its single event."""
        yield TriggerEvent(await self._wait())  # type: ignore[no-untyped-call]

    async def _wait(self) -> dict[str, Any]:
        watch = self._watch()
        try:
            # One session for the whole run; leaving the block gives its pool back, also on
            # cancellation (the shared pool closes when the triggerer's last trigger leaves).
            # Lineage is the task's to report (the triggerer runs no task): hook lineage off.
            hook = VexoraHook(self.vexora_conn_id, hook_lineage=False)
            async with hook.async_session(share_pool=self.share_pool) as session:
                polls = 1  # the sensor polled once before deferring
                while True:
                    delay = next_poll_delay(
                        self.poll_interval,
                        polls,
                        exponential_backoff=self.exponential_backoff,
                        max_wait=self.max_wait,
                    )
                    await sleep(max(0.0, min(delay, self.end_time - time.time())))
                    pending = watch.to_poll()
                    try:
                        results: list[PayoutStatus | PayoutQueryError] = [
                            r async for r in session.stream_payout_statuses(pending)
                        ]
                        verdict = watch.record(results)
                    except VexoraError as error:
                        verdict = watch.record_poll_error(error)
                    polls += 1
                    if verdict.done:
                        return self._event(
                            verdict.outcome, verdict.message, watch, verdict.retryable, verdict.cause
                        )
                    if verdict.message:
                        self.log.warning("Poll %d: %s; %s", polls, verdict.message, watch.pending_summary())
                    else:
                        self.log.info("Poll %d: %s", polls, watch.pending_summary())
                    # The poll just made is the final check: only now is it safe to call it a timeout.
                    if time.time() >= self.end_time:
                        deadline = datetime.fromtimestamp(self.end_time, UTC).isoformat(timespec="seconds")
                        message = f"deadline {deadline} passed; {watch.pending_summary()}"
                        return self._event("timeout", message, watch)
        except VexoraError as error:
            if error.permanence.is_permanent:  # e.g. a bad connection, found opening the session
                return self._event("error", str(error), watch, retryable=error.task_retryable, cause=error)
            self.log.exception("Watching payouts failed")
            return self._event("error", f"{type(error).__name__}: {error}", watch)
        except Exception as error:
            self.log.exception("Watching payouts failed")
            return self._event("error", f"{type(error).__name__}: {error}", watch)

    @staticmethod
    def _event(
        status: str,
        message: str,
        watch: PayoutWatch,
        retryable: bool = True,
        cause: VexoraError | None = None,
    ) -> dict[str, Any]:
        event = {"status": status, "message": message, "statuses": watch.statuses(), "retryable": retryable}
        if isinstance(cause, VexoraAuthError):
            # The sensor raises VexoraAuthError again from this, as poke mode does.
            event["error_type"] = "VexoraAuthError"
        return event
