"""Creating a payout without ever paying twice: the create flow, written once for both runners.

Vexora's only guard against a second payout is the merchant's trade number, unique per merchant.
So a create is never re-sent on a guess: :func:`create_flow` asks the gateway first, and after
any answer that is not a clear "created" it asks again before deciding anything.

1. Query the trade number. A payout under it already exists: nothing is sent
   (:class:`~vexora_provider.exceptions.VexoraPayoutExistsError` carries it). The query fails:
   nothing is sent, the query's error is raised.
2. The gateway says it has no such payout: send the create. Tries that never reached the gateway
   (no connection could be opened) are repeated at once, like any call.
3. Answered ``0000``: created, return the payout.
4. Any other outcome -- a timeout or a dropped connection after the request went out, HTTP 5xx,
   code ``5000``, a refusal, a body that is not the envelope -- query the trade number again:

   - found after a refusal (the duplicate answer) with no earlier create of this flow in doubt:
     someone else's payout, :class:`VexoraPayoutExistsError`;
   - found otherwise: this flow's create went through, return it;
   - not found after a refusal: the refusal stands, it is raised;
   - not found after an unclear outcome: send the same create again (same trade number, so the
     gateway can never hold two), at most ``max_attempts`` creates in all;
   - the query fails: :class:`~vexora_provider.exceptions.VexoraPayoutUnknownError`, and nothing
     more is sent.

The flow is a generator that performs no I/O: it yields the :class:`~._driver.Call` to make (or a
:class:`~._driver.Wait`) and is sent the call's result or thrown its error, so the sync hook and
the async session run the very same decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vexora_provider.exceptions import (
    Permanence,
    VexoraAPIError,
    VexoraError,
    VexoraHTTPError,
    VexoraInvalidPayoutError,
    VexoraPayoutExistsError,
    VexoraPayoutUnknownError,
    VexoraTransportError,
)
from vexora_provider.hooks import _retry
from vexora_provider.hooks._driver import Call, Driver, RetryRule, Wait
from vexora_provider.hooks._protocol import (
    DISBURSEMENTS_PATH,
    UNSENT_KINDS,
    clean_trade_no,
    read_created,
    read_lookup,
)
from vexora_provider.models import PayoutStatus, validate_payout_amount

__all__ = ["RESERVED_FIELDS", "PayoutRequest", "create_flow", "lookup_call", "never_reached_gateway"]

log = logging.getLogger("vexora_provider.hooks.vexora")

#: Body fields the hook writes itself; beneficiary ``fields`` may not set them.
RESERVED_FIELDS = frozenset({"tradeNo", "amount", "notifyUrl", "remark", "timestamp", "sign"})

FlowStep = Call[Any] | Wait


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    """
    A validated create request.

    :param trade_no: the merchant's trade number, the payout's unique key.
    :param amount: the amount as the exact decimal text sent.
    :param fields: the body fields: ``tradeNo``, ``amount``, ``notifyUrl``, ``remark`` and the
        region's beneficiary fields, all strings.
    """

    trade_no: str
    amount: str
    fields: Mapping[str, str]

    @classmethod
    def build(
        cls,
        *,
        trade_no: object,
        amount: Decimal | str | int,
        fields: Mapping[str, str] | None,
        notify_url: str | None = None,
        remark: str | None = None,
    ) -> PayoutRequest:
        """Validate every input before any request; raise :class:`VexoraInvalidPayoutError` naming it."""
        trade_no = clean_trade_no(trade_no)
        text = validate_payout_amount(amount, trade_no=trade_no)
        body: dict[str, str] = {}
        for key, value in (fields or {}).items():
            if not isinstance(key, str) or not key or key in RESERVED_FIELDS:
                raise VexoraInvalidPayoutError(
                    f"beneficiary field name {key!r} is not allowed (names must be non-empty "
                    f"strings other than {', '.join(sorted(RESERVED_FIELDS))})",
                    trade_no=trade_no,
                )
            if not isinstance(value, str):
                raise VexoraInvalidPayoutError(
                    f"beneficiary field {key!r} must be a string, not {type(value).__name__} "
                    "(every value is sent and signed as text)",
                    trade_no=trade_no,
                )
            if value:  # empty values are neither signed nor sent
                body[key] = value
        for name, option in (("notifyUrl", notify_url), ("remark", remark)):
            if option is not None and not isinstance(option, str):
                raise VexoraInvalidPayoutError(
                    f"{name} must be a string, not {type(option).__name__}", trade_no=trade_no
                )
            if option:
                body[name] = option
        body.update(tradeNo=trade_no, amount=text)
        return cls(trade_no, text, body)


def never_reached_gateway(error: VexoraError) -> bool:
    """Whether a failed try provably sent nothing (no connection was ever opened) and may be repeated."""
    return isinstance(error, VexoraTransportError) and error.transient and error.kind in UNSENT_KINDS


def lookup_call(driver: Driver, trade_no: str) -> Call[PayoutStatus | None]:
    """The status query that tells "this payout exists" from "no such payout" (``None``)."""
    return driver.query_call(trade_no, read_lookup)


def _create_call(driver: Driver, request: PayoutRequest) -> Call[PayoutStatus]:
    config = driver.config
    return Call(
        DISBURSEMENTS_PATH,
        request.fields,
        lambda answer: read_created(answer, request.trade_no, config),
        request.trade_no,
        # Only tries that never reached the gateway are repeated by the driver; everything else
        # comes back here and is settled by a status query first.
        RetryRule(config.max_attempts, never_reached_gateway),
    )


def _refused(error: VexoraError) -> bool:
    """Whether the gateway answered and said no: it did not create a payout with this request."""
    if isinstance(error, VexoraAPIError):
        return error.code != "5000"
    if isinstance(error, VexoraHTTPError):
        return 400 <= error.http_status < 500 and error.http_status not in (408, 429)
    return False


def create_flow(driver: Driver, request: PayoutRequest) -> Generator[FlowStep, Any, PayoutStatus]:
    """Create ``request``'s payout at most once (see the module docstring); return it."""
    trade_no = request.trade_no
    existing = yield lookup_call(driver, trade_no)
    if existing is not None:
        raise VexoraPayoutExistsError(existing=existing, trade_no=trade_no)
    in_doubt = False  # whether an earlier create of this flow may have gone through
    last: VexoraError | None = None
    sends = driver.config.max_attempts
    for send in range(1, sends + 1):
        try:
            created: PayoutStatus = yield _create_call(driver, request)
        except VexoraError as error:
            if never_reached_gateway(error):
                raise  # after the driver's own tries: nothing was sent this time
            refused = _refused(error)
            log.warning(
                "Vexora create of %s %s (%s): querying the trade number before anything else is sent",
                trade_no,
                "refused" if refused else "got no clear answer",
                error.brief,
            )
            try:
                found: PayoutStatus | None = yield lookup_call(driver, trade_no)
            except VexoraError as failed:
                if failed.permanence is Permanence.CONNECTION:
                    raise  # e.g. refused credentials: a person must act, whatever happened
                raise VexoraPayoutUnknownError(
                    f"the create request got {error.brief} and the status query that should settle "
                    f"it failed ({failed.brief}): whether the payout exists is unknown, so nothing "
                    "more was sent; a later attempt queries the trade number first",
                    trade_no=trade_no,
                ) from failed
            if found is not None:
                if refused and not in_doubt:
                    raise VexoraPayoutExistsError(existing=found, trade_no=trade_no) from error
                log.info("Vexora payout %s exists (%s): the create went through", trade_no, found.state.value)
                return found
            if refused:
                raise
            in_doubt = True
            if send < sends:
                log.warning(
                    "Vexora holds no payout %s after that create: sending it again with the same "
                    "trade number (%d of %d)",
                    trade_no,
                    send + 1,
                    sends,
                )
                yield Wait(_retry.backoff_delay(send))
            last = error
        else:
            log.info("Vexora payout %s created (status %s)", trade_no, created.status_code)
            return created
    raise VexoraPayoutUnknownError(
        f"{sends} create requests got no clear answer (last: {last.brief if last else '-'}) and "
        "the gateway holds no such payout; nothing more was sent",
        trade_no=trade_no,
    ) from last
