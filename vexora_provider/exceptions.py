"""Typed errors raised by the Vexora provider.

Every error carries its facts as attributes (``trade_no``, ``code``, ``http_status`` …) so callers
branch on fields, never on message text. Messages name the trade and the cause and never contain
the app secret or a request signature: no secret is ever put into one.

How far a failure reaches is decided once, when the error is made, as its :class:`Permanence`.
The hook's retries, the sensor's and trigger's watch and the warehouse sync all read that one
field, so they cannot disagree about what a retry or another poll can fix.
"""

from __future__ import annotations

import sys
import warnings
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

import airflow.sdk
from airflow.sdk.exceptions import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from types import FrameType

    from vexora_provider.models import PayoutStatus

__all__ = [
    "Permanence",
    "VexoraAPIError",
    "VexoraAuthError",
    "VexoraBudgetError",
    "VexoraConfigError",
    "VexoraDeprecationWarning",
    "VexoraError",
    "VexoraHTTPError",
    "VexoraInvalidPayoutError",
    "VexoraInvalidTradeNoError",
    "VexoraPayoutExistsError",
    "VexoraPayoutFailedError",
    "VexoraPayoutUnknownError",
    "VexoraResponseFormatError",
    "VexoraTransportError",
    "warn_deprecated",
]


class Permanence(StrEnum):
    """
    How far a failure reaches, from "try the same request again" to "nothing works until fixed".

    - ``transient``: the same request may well succeed shortly (timeouts, 5xx, 429, code 5000);
      the hook retries it with backoff.
    - ``call``: this answer is final for this call, so an immediate retry is pointless, but a
      later poll may get another one (an HTTP 404, an undocumented code, odd ``data``).
    - ``trade``: no request about this trade number can ever succeed (it is malformed).
    - ``connection``: no request on this connection can succeed until a person fixes it (bad
      configuration, refused credentials, an untrusted TLS certificate): a watch ends at once and
      a bulk sync stops instead of recording the same error for every trade.
    """

    TRANSIENT = "transient"
    CALL = "call"
    TRADE = "trade"
    CONNECTION = "connection"

    @property
    def is_permanent(self) -> bool:
        """Whether polling again can never help (``trade`` or ``connection``)."""
        return self is Permanence.TRADE or self is Permanence.CONNECTION


class ErrorFacts(TypedDict, total=False):
    """Facts every :class:`VexoraError` accepts as keywords."""

    trade_no: str | None
    permanence: Permanence
    transient: bool
    attempts: int


def _about(trade_no: str | None) -> str:
    return f"trade {trade_no!r}: " if trade_no else ""


class VexoraError(AirflowException):
    """
    Base class of every error raised by this provider.

    :param message: what went wrong, without any secret.
    :param trade_no: the merchant trade number concerned, if any.
    :param permanence: how far the failure reaches; the class's :attr:`default_permanence` when
        omitted.
    :param transient: shorthand for ``permanence=Permanence.TRANSIENT`` when true.
    :param attempts: how many tries were made before giving up (0 when none was sent).
    """

    #: The permanence of errors of this class unless the raiser says otherwise.
    default_permanence = Permanence.CALL

    def __init__(
        self,
        message: str,
        *,
        trade_no: str | None = None,
        permanence: Permanence | None = None,
        transient: bool = False,
        attempts: int = 0,
    ) -> None:
        super().__init__(_about(trade_no) + message)
        if transient and permanence not in (None, Permanence.TRANSIENT):
            raise ValueError(f"transient=True contradicts permanence={permanence}")
        self.trade_no = trade_no
        self.permanence = Permanence.TRANSIENT if transient else permanence or self.default_permanence
        self.attempts = attempts

    @property
    def transient(self) -> bool:
        """Whether retrying the same request soon may succeed (the hook's retry rule reads this)."""
        return self.permanence is Permanence.TRANSIENT

    @property
    def task_retryable(self) -> bool:
        """
        Whether a later try of the task may succeed: not when only a person can fix the cause.

        The permanence says what this call, poll or stream should do now; this says whether the
        task's own retries, minutes later, are worth having.
        """
        return not self.permanence.is_permanent

    @property
    def brief(self) -> str:
        """A few words naming the cause, for retry log lines, e.g. ``HTTP 503`` or ``code 5000``."""
        return type(self).__name__

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only attributes do not survive the default exception pickling (used by
        # multiprocessing and some executors), so rebuild through a helper that restores them.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[VexoraError], args: tuple[object, ...], state: dict[str, object]) -> VexoraError:
    error = Exception.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class VexoraConfigError(VexoraError):
    """
    The connection or an argument is unusable (missing login, bad URL, bad extra).

    :param message: which setting is wrong, why, and how to fix it.
    """

    default_permanence = Permanence.CONNECTION


class VexoraBudgetError(VexoraConfigError):
    """
    The shared gateway budget's storage (extra ``budget_storage``) cannot be used: unreachable,
    refusing the password, or its client library is not installed.

    Raised instead of sending the request: with the budget configured, no task runs unlimited.
    Its permanence is ``connection``, so a bulk sync or a watch stops at once rather than
    recording the same error for every trade. A storage that failed to answer (an ``outage``)
    may be back by the task's next try, so the task keeps its retries; a missing package or a
    refused password fails it without them.

    :param message: what failed, naming ``budget_storage`` (its password never shown).
    :param outage: the storage did not answer or broke off (not a setting a person must fix).
    """

    default_permanence = Permanence.CONNECTION

    def __init__(self, message: str, *, outage: bool = False, **kwargs: Unpack[ErrorFacts]) -> None:
        super().__init__(message, **kwargs)
        self.outage = outage

    @property
    def task_retryable(self) -> bool:
        """Whether the task's next try may find the storage back: only after an outage."""
        return self.outage or super().task_retryable


class VexoraAuthError(VexoraError, AirflowFailException):
    """
    The gateway refused the merchant's credentials (``code`` 8000 on ``queryBalance``).

    Also an ``AirflowFailException``: a task failing with it is not retried, because every retry
    would be refused the same way until someone fixes the connection's login or password.

    :param message: the gateway's words and the hint, without any secret.
    :param code: the request-level ``code`` the gateway answered.
    :param msg: the gateway's ``msg`` text.
    """

    default_permanence = Permanence.CONNECTION

    def __init__(self, message: str, *, code: str, msg: str = "", **kwargs: Unpack[ErrorFacts]) -> None:
        super().__init__(message, **kwargs)
        self.code = code
        self.msg = msg


class VexoraInvalidTradeNoError(VexoraError, ValueError):
    """
    A trade number was rejected before any request: empty, over 32 characters or not printable.

    :param message: what is wrong with it.
    """

    default_permanence = Permanence.TRADE


class VexoraInvalidPayoutError(VexoraError, ValueError):
    """
    A payout to create was rejected before any request: its amount is not a finite, positive,
    plain decimal, or a beneficiary field, ``notifyUrl`` or ``remark`` is not text.

    :param message: which input is wrong and why.
    """

    default_permanence = Permanence.TRADE


class VexoraAPIError(VexoraError):
    """
    The gateway answered with a request-level ``code`` other than ``0000``.

    :param code: the gateway's ``code`` (``5000``, ``8000`` or an undocumented one).
    :param msg: the gateway's ``msg`` text.
    """

    def __init__(self, *, code: str, msg: str, **kwargs: Unpack[ErrorFacts]) -> None:
        super().__init__(f"gateway answered code {code} ({msg or 'no msg'})", **kwargs)
        self.code = code
        self.msg = msg

    @property
    def brief(self) -> str:
        """``code <code>``."""
        return f"code {self.code}"


class VexoraHTTPError(VexoraError):
    """
    The gateway answered with an HTTP error status.

    :param http_status: the HTTP status.
    :param retry_after: seconds the gateway asked us to wait (429/503), if it said.
    """

    def __init__(
        self, *, http_status: int, retry_after: float | None = None, **kwargs: Unpack[ErrorFacts]
    ) -> None:
        super().__init__(f"HTTP {http_status} from the gateway", **kwargs)
        self.http_status = http_status
        self.retry_after = retry_after

    @property
    def brief(self) -> str:
        """``HTTP <status>``."""
        return f"HTTP {self.http_status}"


class VexoraTransportError(VexoraError):
    """
    No usable answer arrived: timeout, refused or reset connection, broken body.

    :param reason: short description, e.g. ``"read timeout after 10s"``.
    :param kind: what failed, e.g. ``connect_timeout``, ``refused``, ``read_timeout``, ``reset``,
        ``tls_verify``, ``proxy``; a connect-phase kind means the request never reached the gateway.
    """

    def __init__(self, reason: str, *, kind: str = "other", **kwargs: Unpack[ErrorFacts]) -> None:
        super().__init__(reason, **kwargs)
        self.reason = reason
        self.kind = kind

    @property
    def brief(self) -> str:
        """The reason, e.g. ``read timeout after 10s from api.example.com``."""
        return self.reason


class VexoraResponseFormatError(VexoraError):
    """
    The gateway's answer is not the documented JSON (not JSON, missing field, bad amount).

    :param reason: what was wrong, e.g. ``"data.status missing"``.
    """

    def __init__(self, reason: str, **kwargs: Unpack[ErrorFacts]) -> None:
        super().__init__(f"malformed response: {reason}", **kwargs)
        self.reason = reason

    @property
    def brief(self) -> str:
        """``malformed response``."""
        return "malformed response"


class VexoraPayoutFailedError(VexoraError):
    """
    A payout reached a state the caller's policy treats as failure.

    :param payout_code: the payout's ``data.status`` code.
    :param state: the classified state (``failed`` or ``unknown``).
    :param payout_message: the gateway's ``data.message`` for the payout.
    """

    def __init__(
        self, *, payout_code: str, state: str, payout_message: str | None, **kwargs: Unpack[ErrorFacts]
    ) -> None:
        super().__init__(
            f"payout {state} (status {payout_code}: {payout_message or 'no message'})",
            **kwargs,
        )
        self.payout_code = payout_code
        self.state = state
        self.payout_message = payout_message


class VexoraPayoutExistsError(VexoraError):
    """
    A payout with this trade number already exists at the gateway, so none was created.

    The trade number is the merchant's unique key for one payout: creating it again can never
    succeed, and must not.

    :param existing: the payout the gateway holds under this trade number.
    """

    default_permanence = Permanence.TRADE

    def __init__(self, *, existing: PayoutStatus, **kwargs: Unpack[ErrorFacts]) -> None:
        super().__init__(
            f"a payout with this trade number already exists ({existing.state.value}, status "
            f"{existing.status_code}); it was not created again",
            **kwargs,
        )
        self.existing = existing


class VexoraPayoutUnknownError(VexoraError):
    """
    A create request got no clear answer, and the status query that should settle it failed.

    Whether the payout exists is unknown, so nothing more was sent. Trying again later is safe:
    the next attempt queries the trade number before it sends anything.

    :param message: what the create got and what the query got, without any secret.
    """

    default_permanence = Permanence.TRANSIENT


class VexoraDeprecationWarning(FutureWarning):
    """
    An argument or name of this provider that still works but will go in a future major release;
    the message says what to use instead.

    A ``FutureWarning``, not a ``DeprecationWarning``: it is meant for DAG authors, and Python
    hides ``DeprecationWarning`` outside ``__main__`` by default, also when Airflow parses a DAG.
    """


def warn_deprecated(message: str) -> None:
    """Warn with :class:`VexoraDeprecationWarning`, pointing at the first line outside Airflow and us."""
    ours = (Path(__file__).parent, Path(airflow.sdk.__file__).parent.parent)
    frame: FrameType | None = sys._getframe(1)
    level = 1
    # Airflow wraps operator constructors a varying number of times (defaults, DAG context).
    while frame is not None and any(Path(frame.f_code.co_filename).is_relative_to(p) for p in ours):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, VexoraDeprecationWarning, stacklevel=level + 1)
