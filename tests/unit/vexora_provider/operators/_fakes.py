"""A scripted stand-in for the Vexora hook's bulk stream, for operator tests without HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from vexora_provider.exceptions import VexoraHTTPError, VexoraInvalidTradeNoError
from vexora_provider.hooks.vexora import FetchStats
from vexora_provider.models import PayoutQueryError, PayoutStatus, StatusMap, parse_payout_status

MERCHANT = "3060414594"
CODES = {"success": "0000", "partial": "0001", "pending": "0015", "failed": "00029", "unknown": "0042"}


def status(trade_no: str, state: str = "success", amount: str = "300.00") -> PayoutStatus:
    """A parsed status the way the hook returns it."""
    data = json.loads(
        json.dumps(
            {
                "tradeNo": trade_no,
                "platFormTradeNo": f"VX{trade_no}",
                "status": CODES[state],
                "message": state,
                "amount": amount,
                "successTime": "2026-01-02 10:00:00",
            }
        ),
        parse_float=Decimal,
    )
    from zoneinfo import ZoneInfo

    return parse_payout_status(data, trade_no=trade_no, status_map=StatusMap(), tz=ZoneInfo("Africa/Lagos"))


def failure(trade_no: str) -> PayoutQueryError:
    """A lookup that failed after retries."""
    return PayoutQueryError(trade_no, VexoraHTTPError(http_status=503, trade_no=trade_no, attempts=4))


@dataclass
class FakeConfig:
    merchant_no: str = MERCHANT


@dataclass
class FakeSession:
    answers: Mapping[str, PayoutStatus | PayoutQueryError | str]
    config: FakeConfig = field(default_factory=FakeConfig)
    stats: FetchStats = field(default_factory=FetchStats)
    asked: list[str] = field(default_factory=list)

    async def stream_payout_statuses(
        self, trade_nos: Iterable[str] | AsyncIterable[str], *, concurrency: int | None = None
    ) -> AsyncIterator[PayoutStatus | PayoutQueryError]:
        async def items() -> AsyncIterator[str]:
            if isinstance(trade_nos, AsyncIterable):
                async for t in trade_nos:
                    yield t
            else:
                for t in trade_nos:
                    yield t

        async for trade_no in items():
            self.asked.append(trade_no)
            self.stats.requested += 1
            if not isinstance(trade_no, str) or len(trade_no) > 32:
                err = VexoraInvalidTradeNoError("bad trade number", trade_no=str(trade_no))
                self.stats.failed += 1
                yield PayoutQueryError(str(trade_no), err)
                continue
            answer = self.answers.get(trade_no, "success")
            if isinstance(answer, str):
                self.stats.succeeded += 1
                yield status(trade_no, answer)
            else:
                yield answer


class FakeHook:
    """Quacks like :class:`VexoraHook` for :class:`WarehouseSync`: ``async_session`` only."""

    def __init__(self, answers: Mapping[str, Any] | None = None) -> None:
        self.session = FakeSession(dict(answers or {}))
        self.concurrency: int | None = None

    @asynccontextmanager
    async def _session(self, concurrency: int) -> AsyncIterator[FakeSession]:
        self.concurrency = concurrency
        yield self.session

    def async_session(self, *, concurrency: int = 32) -> Any:
        return self._session(concurrency)
