"""Typed errors raised by the Vexora provider.

Every error carries its facts as attributes (``trade_no``, ``code``, ``http_status`` …) so callers
branch on fields, never on message text. Messages name the trade and the cause and never contain
the app secret or a request signature.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from airflow.sdk.exceptions import AirflowException

__all__ = [
    "VexoraAPIError",
    "VexoraAuthError",
    "VexoraConfigError",
    "VexoraError",
    "VexoraHTTPError",
    "VexoraInvalidTradeNoError",
    "VexoraPayoutFailedError",
    "VexoraResponseFormatError",
    "VexoraTransportError",
]


class ErrorFacts(TypedDict, total=False):
    """Facts every :class:`VexoraError` accepts as keywords."""

    trade_no: str | None
    transient: bool
    attempts: int


def _about(trade_no: str | None) -> str:
    return f"trade {trade_no!r}: " if trade_no else ""


class VexoraError(AirflowException):
    """
    Base class of every error raised by this provider.

    :param message: what went wrong, without any secret.
    :param trade_no: the merchant trade number concerned, if any.
    :param transient: whether retrying the same call may succeed.
    :param attempts: how many tries were made before giving up (0 when none was sent).
    """

    def __init__(
        self, message: str, *, trade_no: str | None = None, transient: bool = False, attempts: int = 0
    ) -> None:
        super().__init__(_about(trade_no) + message)
        self.trade_no = trade_no
        self.transient = transient
        self.attempts = attempts

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

    :param message: which setting is wrong and why.
    """


class VexoraAuthError(VexoraError):
    """
    The gateway refused the merchant's credentials (``code`` 8000 on ``queryBalance``).

    :param message: the gateway's words, without any secret.
    :param code: the request-level ``code`` the gateway answered.
    """

    def __init__(self, message: str, *, code: str, **kwargs: Unpack[ErrorFacts]) -> None:
        super().__init__(message, **kwargs)
        self.code = code


class VexoraInvalidTradeNoError(VexoraError, ValueError):
    """
    A trade number was rejected before any request: empty, over 32 characters or not printable.

    :param message: what is wrong with it.
    """


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


class VexoraTransportError(VexoraError):
    """
    No usable answer arrived: timeout, refused or reset connection, broken body.

    :param reason: short description, e.g. ``"read timeout after 10s"``.
    """

    def __init__(self, reason: str, **kwargs: Unpack[ErrorFacts]) -> None:
        super().__init__(reason, **kwargs)
        self.reason = reason


class VexoraResponseFormatError(VexoraError):
    """
    The gateway's answer is not the documented JSON (not JSON, missing field, bad amount).

    :param reason: what was wrong, e.g. ``"data.status missing"``.
    """

    def __init__(self, reason: str, **kwargs: Unpack[ErrorFacts]) -> None:
        super().__init__(f"malformed response: {reason}", **kwargs)
        self.reason = reason


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
