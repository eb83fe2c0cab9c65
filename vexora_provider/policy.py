"""Judging a set of watched payouts: the one place poke mode and the trigger decide what happened.

:class:`PayoutWatch` keeps what is known about the watched trades between polls, as plain data so
the trigger can carry it in its kwargs, and turns each poll's answers into a :class:`Verdict`.
The sensor (sync, one call per trade) and the trigger (async, one shared client) only differ in
how they fetch; everything they conclude comes from here, so both modes give the same result for
the same gateway answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from vexora_provider._text import count
from vexora_provider.exceptions import VexoraError, VexoraPayoutFailedError
from vexora_provider.models import TERMINAL_STATES, PayoutQueryError, PayoutState, PayoutStatus

__all__ = [
    "DEFAULT_MAX_CONSECUTIVE_FAILURES",
    "DEFAULT_SUCCESS_STATES",
    "PayoutWatch",
    "StatusDict",
    "SuccessPolicy",
    "Verdict",
    "next_poll_delay",
]

DEFAULT_SUCCESS_STATES: tuple[str, ...] = (PayoutState.SUCCESS.value, PayoutState.PARTIAL.value)
DEFAULT_MAX_CONSECUTIVE_FAILURES = 3

StatusDict = dict[str, str | None]
Outcome = Literal["waiting", "success", "failed", "error"]


@dataclass(frozen=True, slots=True)
class SuccessPolicy:
    """
    Which terminal states count as success, and whether any other terminal state fails the task.

    An ``unknown`` status code always fails the watch, whatever the policy: map the code in the
    connection's ``status_map`` extra if you know what it means.

    :param success_states: terminal states (``success``, ``partial``, ``failed``) that count as
        success.
    :param fail_on_failed: whether a payout ending in a terminal state outside ``success_states``
        fails the task; when ``False`` the watch succeeds and reports that payout's status.
    """

    success_states: frozenset[PayoutState] = frozenset({PayoutState.SUCCESS, PayoutState.PARTIAL})
    fail_on_failed: bool = True

    @classmethod
    def from_names(cls, success_states: Iterable[str], *, fail_on_failed: bool = True) -> SuccessPolicy:
        """Build a policy from state names, refusing states that are not terminal."""
        if isinstance(success_states, str):
            success_states = [success_states]
        states: set[PayoutState] = set()
        allowed = ", ".join(sorted(s.value for s in TERMINAL_STATES))
        for name in success_states:
            try:
                state = PayoutState(str(name).lower())
            except ValueError:
                state = None
            if state is None or state not in TERMINAL_STATES:
                hint = " (map unknown codes in the connection's status_map extra)" if state else ""
                raise ValueError(f"success_states: {name!r} is not a terminal state; use {allowed}{hint}")
            states.add(state)
        if not states:
            raise ValueError(f"success_states must name at least one of {allowed}")
        if not isinstance(fail_on_failed, bool):
            raise TypeError(f"fail_on_failed must be a bool, not {type(fail_on_failed).__name__}")
        return cls(frozenset(states), fail_on_failed)

    @property
    def success_state_names(self) -> list[str]:
        """The success states as sorted plain strings (for trigger kwargs)."""
        return sorted(s.value for s in self.success_states)

    def rejection(self, status: Mapping[str, Any]) -> VexoraPayoutFailedError | None:
        """Return the error this status fails the watch with, or ``None`` when it does not."""
        state = PayoutState(status["state"])
        # unknown is never acceptable: the gateway may still move it, or it may be a failure.
        acceptable = state not in TERMINAL_STATES or state in self.success_states or not self.fail_on_failed
        if state is not PayoutState.UNKNOWN and acceptable:
            return None
        return VexoraPayoutFailedError(
            payout_code=str(status["status_code"]),
            state=state.value,
            payout_message=status.get("message"),
            trade_no=str(status["trade_no"]),
        )


def failure_message(error: VexoraPayoutFailedError) -> str:
    """Return the task failure message for a rejected payout."""
    if error.state == PayoutState.UNKNOWN.value:
        return (
            f"{error}: status code {error.payout_code!r} is not one Vexora documents; if you know "
            "what it means, map it in the connection's status_map extra, e.g. "
            f'{{"{error.payout_code}": "failed"}}'
        )
    return str(error)


@dataclass(frozen=True, slots=True)
class Verdict:
    """
    What one poll concluded.

    :param outcome: ``waiting`` (poll again), ``success``, ``failed`` (a payout failed the policy)
        or ``error`` (the watch cannot go on).
    :param message: a human sentence naming the trade and the cause; while waiting, what the
        last poll's failed query was (empty when every query answered).
    :param statuses: the latest known statuses as plain dicts, in input order.
    :param retryable: for ``error``: whether retrying the task may help (the error's
        ``task_retryable``).
    :param cause: for an ``error`` no poll can fix: the error that decided it.
    """

    outcome: Outcome
    message: str
    statuses: list[StatusDict]
    retryable: bool = True
    cause: VexoraError | None = None

    @property
    def done(self) -> bool:
        """Whether the watch is over."""
        return self.outcome != "waiting"


@dataclass(slots=True)
class PayoutWatch:
    """
    The state of waiting for a set of payouts, kept as plain data between polls.

    :param trade_nos: the watched trade numbers, in input order, without duplicates.
    :param policy: the success policy.
    :param max_consecutive_failures: polls in a row whose query failed before the watch errors.
    :param terminal: statuses already final (plain dicts keyed by trade number); never polled again.
    :param failed_polls: failed polls in a row so far.
    """

    trade_nos: Sequence[str]
    policy: SuccessPolicy
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    terminal: dict[str, StatusDict] = field(default_factory=dict)
    failed_polls: int = 0
    _latest: dict[str, StatusDict] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.max_consecutive_failures < 1:
            raise ValueError("max_consecutive_failures must be at least 1")
        self.trade_nos = tuple(self.trade_nos)
        self.terminal = {t: s for t, s in self.terminal.items() if t in self.trade_nos}
        self._latest.update(self.terminal)

    def to_poll(self) -> list[str]:
        """Return the trades whose status is not final yet, in input order."""
        return [t for t in self.trade_nos if t not in self.terminal]

    def statuses(self) -> list[StatusDict]:
        """Return the latest known status of each trade that has one, in input order."""
        return [self._latest[t] for t in self.trade_nos if t in self._latest]

    def record(self, results: Iterable[PayoutStatus | PayoutQueryError]) -> Verdict:
        """Take one poll's answers (any order) and decide what they mean."""
        errors: list[PayoutQueryError] = []
        for result in results:
            if isinstance(result, PayoutQueryError):
                errors.append(result)
                continue
            status = result.to_dict()
            self._latest[result.trade_no] = status
            if result.is_terminal:
                self.terminal[result.trade_no] = status
        # A payout that already failed is the answer, whatever happened to the other queries.
        for trade_no in self.trade_nos:
            latest = self._latest.get(trade_no)
            rejected = self.policy.rejection(latest) if latest else None
            if rejected is not None:
                return Verdict("failed", failure_message(rejected), self.statuses(), retryable=False)
        for error in errors:
            # What the error's permanence says no poll can fix ends the watch at once.
            if error.error.permanence.is_permanent:
                retryable = error.error.task_retryable
                return Verdict(
                    "error", error.message, self.statuses(), retryable=retryable, cause=error.error
                )
        if errors:
            # Answers come in completion order; name the first failing trade in input order.
            order = {t: i for i, t in enumerate(self.trade_nos)}
            return self._failed_poll(sorted(errors, key=lambda e: order.get(e.trade_no, len(order))))
        self.failed_polls = 0  # "not yet terminal" is a healthy answer: it clears the count
        if not self.to_poll():
            final = (
                "the payout is final"
                if len(self.trade_nos) == 1
                else f"all {len(self.trade_nos)} payouts are final"
            )
            return Verdict("success", final, self.statuses())
        return Verdict("waiting", "", self.statuses())

    def record_poll_error(self, error: VexoraError) -> Verdict:
        """Take a poll that failed as a whole (no answer for any trade)."""
        if error.permanence.is_permanent:
            return Verdict("error", str(error), self.statuses(), retryable=error.task_retryable, cause=error)
        pending = self.to_poll()
        return self._failed_poll([PayoutQueryError(pending[0] if pending else "", error)])

    def _failed_poll(self, errors: Sequence[PayoutQueryError]) -> Verdict:
        self.failed_polls += 1
        others = f"; {count(len(errors) - 1, 'more trade')} failing too" if len(errors) > 1 else ""
        if self.failed_polls < self.max_consecutive_failures:
            # While waiting, the message is for the log: what failed, and how close to giving up.
            progress = f"{self.failed_polls} of {self.max_consecutive_failures} failed polls allowed in a row"
            return Verdict("waiting", f"{errors[0].message} ({progress}{others})", self.statuses())
        message = f"{errors[0].message} ({count(self.failed_polls, 'poll')} in a row{others})"
        return Verdict("error", message, self.statuses(), retryable=True)

    def pending_summary(self) -> str:
        """Return e.g. ``2 of 5 payouts not final yet: 'a', 'b'`` for logs and timeouts."""
        pending = self.to_poll()
        shown = ", ".join(repr(t) for t in pending[:5]) + (", …" if len(pending) > 5 else "")
        return f"{len(pending)} of {count(len(self.trade_nos), 'payout')} not final yet: {shown}"


def next_poll_delay(
    poll_interval: float, polls_done: int, *, exponential_backoff: bool, max_wait: float | None
) -> float:
    """Return the wait before the next poll; doubles after each poll when backing off."""
    if not exponential_backoff:
        return poll_interval
    delay = poll_interval * 2.0 ** max(polls_done - 1, 0)
    return min(delay, max_wait) if max_wait is not None else delay
