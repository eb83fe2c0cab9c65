"""The attempt driver: sign, send, read, decide retry and backoff, count -- written once.

:meth:`Driver.attempts` is a generator that performs no I/O. It yields what it needs done --
:class:`Send` these bytes, :class:`Wait` this long, :class:`Pause` the whole session, check the
credentials -- and receives the :class:`~vexora_provider.hooks._protocol.Answer` (or has the
sender's :class:`~vexora_provider.hooks._protocol.TransportFailure` thrown in). The runners in
:mod:`._runners` carry the steps out, blocking or on the event loop, the way httpx runs one auth
flow both ways.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, NoReturn, TypeVar

from vexora_provider._urls import ProxyURL
from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import (
    VexoraAPIError,
    VexoraAuthError,
    VexoraError,
    VexoraHTTPError,
    VexoraTransportError,
)
from vexora_provider.hooks import _retry
from vexora_provider.hooks._protocol import (
    AUTH_HINT,
    BALANCE_PATH,
    PAYOUT_STATUS_PATH,
    Answer,
    FetchStats,
    TransportFailure,
    read_balance,
    read_status,
    signed_json,
    transport_error,
)
from vexora_provider.models import Balance, PayoutStatus

__all__ = ["CHECK_CREDENTIALS", "Call", "Credentials", "Driver", "Pause", "RetryRule", "Send", "Step", "Wait"]

# The hook's logger: retries are reported under the name users configure.
log = logging.getLogger("vexora_provider.hooks.vexora")

T = TypeVar("T")


@dataclass(slots=True)
class Send:
    """Send ``body`` to ``endpoint`` (after the limiter allows it) and return the answer."""

    endpoint: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep ``seconds`` before the next try of this call."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Pause:
    """Hold every request of the session for ``seconds`` (the gateway asked us to slow down)."""

    seconds: float


class _CheckCredentials:
    __slots__ = ()


CHECK_CREDENTIALS = _CheckCredentials()
Step = Send | Wait | Pause | _CheckCredentials


def _is_transient(error: VexoraError) -> bool:
    return error.transient


@dataclass(frozen=True, slots=True)
class RetryRule:
    """
    Which failed tries of a call are tried again.

    :param max_attempts: total tries, including the first.
    :param retry_on: whether an error is worth another try; by default, errors whose
        permanence is ``transient``. A call that must never be repeated blindly passes a
        stricter one.
    """

    max_attempts: int
    retry_on: Callable[[VexoraError], bool] = _is_transient

    def should_retry(self, error: VexoraError, attempt: int) -> bool:
        """Whether to try again after ``error`` ended try number ``attempt``."""
        return attempt < self.max_attempts and self.retry_on(error)


@dataclass(slots=True)
class Call(Generic[T]):
    """
    One logical call: what to send, how to read the answer, when to try again.

    :param endpoint: the endpoint path, e.g. ``/v1/vexora/queryPayOutResult``.
    :param fields: the body fields (``timestamp`` and ``sign`` are added per try).
    :param read: turns an answer into the result, or raises the typed error it amounts to.
    :param trade_no: the trade concerned, named in errors and logs.
    :param rule: the retry rule.
    :param counted: whether the call shows in :class:`FetchStats` (the driver's own credential
        check does not).
    """

    endpoint: str
    fields: Mapping[str, str]
    read: Callable[[Answer], T]
    trade_no: str | None
    rule: RetryRule
    counted: bool = True


class Credentials(Enum):
    """What one session knows about its credentials."""

    UNKNOWN = "unknown"
    CHECKING = "checking"
    INCONCLUSIVE = "inconclusive"
    GOOD = "good"
    WRONG = "wrong"


class Driver:
    """
    The attempt logic and the knowledge one session (or sync hook) shares between its calls.

    :param config: the connection.
    :param stats: counters to update.
    :param proxy: the proxy requests go through, named in transport errors.
    """

    def __init__(self, *, config: VexoraConfig, stats: FetchStats, proxy: ProxyURL | None) -> None:
        self.config = config
        self.stats = stats
        self.proxy = proxy
        self.rule = RetryRule(config.max_attempts)
        self.retry_after = _retry.RetryAfterBudget(
            cap=config.retry_after_cap, budget=config.retry_after_budget
        )
        self.credentials = Credentials.UNKNOWN
        self.refusal: VexoraAuthError | None = None
        self._budget_spent_logged = False

    # the calls ---------------------------------------------------------------------------------

    def status_call(self, trade_no: str) -> Call[PayoutStatus]:
        """The ``queryPayOutResult`` call for a validated trade number."""
        return self.query_call(trade_no, read_status)

    def query_call(self, trade_no: str, read: Callable[[Answer, str, VexoraConfig], T]) -> Call[T]:
        """A ``queryPayOutResult`` call whose answer ``read`` turns into its result."""
        config = self.config
        return Call(
            PAYOUT_STATUS_PATH,
            {"tradeNo": trade_no},
            lambda answer: read(answer, trade_no, config),
            trade_no,
            self.rule,
        )

    def balance_call(self, *, rule: RetryRule | None = None, counted: bool = True) -> Call[Balance]:
        """The ``queryBalance`` call."""
        return Call(BALANCE_PATH, {}, read_balance, None, rule or self.rule, counted)

    # credentials -------------------------------------------------------------------------------

    def begin_check(self) -> Call[Balance] | None:
        """Return the balance call that settles a code 8000, or ``None`` when already settled."""
        if self.credentials is not Credentials.UNKNOWN:
            return None
        self.credentials = Credentials.CHECKING
        return self.balance_call(counted=False)

    def end_check(self) -> None:
        """After the check: a timeout or 5000 on it leaves the question open; it is not asked again."""
        if self.credentials is Credentials.CHECKING:
            self.credentials = Credentials.INCONCLUSIVE

    def _refused(self, trade_no: str | None) -> VexoraAuthError:
        assert self.refusal is not None
        return VexoraAuthError(
            "the gateway refused this connection's credentials: a status query and a queryBalance "
            f"check were both answered with code {self.refusal.code} ({self.refusal.msg or 'no msg'}): "
            f"{AUTH_HINT}",
            code=self.refusal.code,
            msg=self.refusal.msg,
            trade_no=trade_no,
        )

    # the attempt loop --------------------------------------------------------------------------

    def attempts(self, call: Call[T]) -> Generator[Step, Answer | None, T]:
        """Drive one call to its result or its final error; yields the steps a runner performs."""
        stats = self.stats
        if call.counted:
            stats.requested += 1
        attempt = 0
        while True:
            if self.refusal is not None:
                # Known wrong credentials: every later call fails at once, without a request.
                self._give_up(self._refused(call.trade_no), attempt, call)
            attempt += 1
            try:
                try:
                    answer = yield Send(call.endpoint, signed_json(call.fields, self.config.secret))
                except TransportFailure as failure:
                    # Chained to the library's own exception, for the traceback.
                    cause = failure.__cause__ or failure
                    raise transport_error(failure, self.config, self.proxy, call.trade_no) from cause
                assert answer is not None
                result = call.read(answer)
            except VexoraAuthError as refused:
                self.credentials, self.refusal = Credentials.WRONG, refused
                self._give_up(refused, attempt, call)
            except VexoraError as failed:
                error = failed
                if self._in_doubt(error, call):
                    yield CHECK_CREDENTIALS
                    if self.refusal is not None:
                        error = self._refused(call.trade_no)
                        error.__cause__ = failed
                delay, pause = self._after_failure(error, attempt, call)
                if pause is not None:
                    yield Pause(pause)
                yield Wait(delay)
                continue
            # Any answered call proves the signature, so a later 8000 is about the query.
            self.credentials = Credentials.GOOD
            if call.counted:
                stats.succeeded += 1
            return result

    def _in_doubt(self, error: VexoraError, call: Call[T]) -> bool:
        return (
            isinstance(error, VexoraAPIError)
            and error.code == "8000"
            and call.endpoint == PAYOUT_STATUS_PATH
            and self.credentials is Credentials.UNKNOWN
        )

    def _give_up(self, error: VexoraError, attempt: int, call: Call[T]) -> NoReturn:
        error.attempts = attempt
        if call.counted:
            self.stats.failed += 1
        raise error

    def _after_failure(self, error: VexoraError, attempt: int, call: Call[T]) -> tuple[float, float | None]:
        """Count the failure; return (delay, session pause) before the next try, or raise when done."""
        stats = self.stats
        asked = None
        if isinstance(error, VexoraHTTPError):
            stats.http_errors += 1
            asked = error.retry_after
            if error.http_status == 429:
                stats.rate_limited += 1
        elif isinstance(error, VexoraTransportError):
            stats.transport_errors += 1
        if not call.rule.should_retry(error, attempt):
            self._give_up(error, attempt, call)
        error.attempts = attempt
        delay = _retry.backoff_delay(attempt)
        pause = None
        granted = self.retry_after.take(asked) if asked is not None else None
        if granted is not None:
            delay = pause = granted
        elif asked is not None and not self._budget_spent_logged:
            self._budget_spent_logged = True
            log.warning(
                "Vexora asked to wait %.0fs (Retry-After), but this session already waited its "
                "budget of %gs for such requests (extra retry_after_budget): backing off normally",
                asked,
                self.config.retry_after_budget,
            )
        if pause is None and isinstance(error, VexoraHTTPError) and error.http_status == 429:
            # No usable Retry-After: still slow the whole session down, not just this request.
            pause = delay
        stats.retries += 1
        log.info(
            "Vexora %s failed (%s); retry %d of %d in %.2fs",
            call.trade_no or call.endpoint.rsplit("/", 1)[-1],
            error.brief,
            attempt,
            call.rule.max_attempts - 1,
            delay,
        )
        return delay, pause
