from __future__ import annotations

from typing import Any

import pytest
from vexora_hook_support import BAD_TRADE_NOS

from vexora_provider.exceptions import VexoraInvalidTradeNoError
from vexora_provider.hooks.vexora import FetchStats, validate_trade_no


class TestValidateTradeNo:
    @pytest.mark.parametrize("trade_no", ["T1", "x" * 32, "ÄÖ-üñ_中文", "a b"])
    def test_accepts(self, trade_no: str) -> None:
        assert validate_trade_no(trade_no) == trade_no

    @pytest.mark.parametrize("trade_no", BAD_TRADE_NOS)
    def test_rejects(self, trade_no: Any) -> None:
        with pytest.raises(VexoraInvalidTradeNoError) as exc:
            validate_trade_no(trade_no)
        assert exc.value.attempts == 0
        assert not exc.value.transient
        assert isinstance(exc.value, ValueError)


class TestFetchStats:
    def test_as_dict_is_plain_numbers(self) -> None:
        stats = FetchStats(requested=3, succeeded=2, failed=1)
        data = stats.as_dict()
        assert data["requested"] == 3
        assert data["failed"] == 1
        assert "elapsed_s" in data
        assert all(type(v) in (int, float) for v in data.values())
