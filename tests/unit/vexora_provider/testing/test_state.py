from __future__ import annotations

from decimal import Decimal

import pytest

from vexora_provider.testing.state import (
    FAILED,
    PARTIAL,
    PENDING,
    SUCCESS,
    ManualClock,
    SimulatorState,
    pick_final,
    unit,
)


def _state(seed: int = 1, clock: ManualClock | None = None) -> SimulatorState:
    state = SimulatorState(seed=seed, clock=clock or ManualClock())
    state.add_merchant("3060414594", "dbecac55466b4958a2d06069fcf49e18")
    return state


MERCHANT = "3060414594"


def _poll(state: SimulatorState, trade_no: str) -> str:
    payout = state.payouts[MERCHANT, trade_no]
    state.advance(payout, poll=True)
    return payout.status


class TestManualClock:
    def test_advance_moves_time(self) -> None:
        clock = ManualClock(100.0)
        clock.advance(2.5)
        assert clock() == 102.5


class TestUnit:
    def test_same_inputs_same_number_in_range(self) -> None:
        assert unit(1, "a", 2) == unit(1, "a", 2)
        assert 0.0 <= unit(1, "a", 2) < 1.0
        assert unit(1, "a", 2) != unit(2, "a", 2)


class TestPickFinal:
    def test_rejects_empty_or_negative_mix(self) -> None:
        with pytest.raises(ValueError, match="mix"):
            pick_final(0, "T1", {})
        with pytest.raises(ValueError, match="mix"):
            pick_final(0, "T1", {"success": -1.0, "failed": 2.0})

    def test_single_weight_always_wins(self) -> None:
        assert {pick_final(s, f"T{s}", {"failed": 1.0}) for s in range(20)} == {"failed"}


class TestSimulatorState:
    @pytest.mark.parametrize(
        ("final", "code"),
        [
            ("success", SUCCESS),
            ("partial", PARTIAL),
            ("failed", FAILED),
            ("unknown", "0099"),
            ("0042", "0042"),
        ],
    )
    def test_pending_for_k_polls_then_final(self, final: str, code: str) -> None:
        state = _state()
        state.put(state.make_payout("T1", "3060414594", final, pending_polls=2))
        assert [_poll(state, "T1") for _ in range(4)] == [PENDING, PENDING, code, code]

    def test_no_pending_phase_is_final_on_first_poll(self) -> None:
        state = _state()
        state.put(state.make_payout("T1", "3060414594", "failed"))
        assert _poll(state, "T1") == FAILED
        assert state.payouts[MERCHANT, "T1"].message in {
            "REJECTED_TRANSACTION",
            "INVALID_ACCOUNT",
            "ACCOUNT_NAME_MISMATCH",
            "RISK_CONTROL",
        }

    def test_pending_for_t_seconds(self) -> None:
        clock = ManualClock()
        state = _state(clock=clock)
        state.put(state.make_payout("T1", "3060414594", "success", pending_seconds=3600))
        assert _poll(state, "T1") == PENDING
        clock.advance(3599)
        assert _poll(state, "T1") == PENDING
        clock.advance(1)
        assert _poll(state, "T1") == SUCCESS
        assert state.payouts[MERCHANT, "T1"].finished_at == clock()

    def test_pending_forever(self) -> None:
        clock = ManualClock()
        state = _state(clock=clock)
        state.put(state.make_payout("T1", "3060414594", "pending", pending_polls=0))
        clock.advance(10**6)
        assert {_poll(state, "T1") for _ in range(5)} == {PENDING}

    def test_polls_drawn_from_range_are_seeded(self) -> None:
        a = _state(seed=5).make_payout("T1", "m", pending_polls=(1, 9))
        b = _state(seed=5).make_payout("T1", "m", pending_polls=(1, 9))
        assert a.pending_polls == b.pending_polls
        assert a.pending_polls is not None
        assert 1 <= a.pending_polls <= 9

    def test_partial_pays_less_than_ordered(self) -> None:
        state = _state()
        for i in range(50):
            payout = state.make_payout(f"T{i}", "m", "partial")
            assert Decimal("0") < payout.pay_amount < payout.order_amount

    def test_same_seed_same_payouts(self) -> None:
        mix = {"success": 0.5, "failed": 0.2, "partial": 0.2, "unknown": 0.1}
        a, b = _state(seed=9), _state(seed=9)
        a.generate(200, "m", mix, pending_polls=(0, 3))
        b.generate(200, "m", mix, pending_polls=(0, 3))
        assert [p.as_dict() for p in a.payouts.values()] == [p.as_dict() for p in b.payouts.values()]

    def test_other_seed_other_payouts(self) -> None:
        a, b = _state(seed=1), _state(seed=2)
        a.generate(50, "m", {"success": 0.5, "failed": 0.5})
        b.generate(50, "m", {"success": 0.5, "failed": 0.5})
        assert [p.final_code for p in a.payouts.values()] != [p.final_code for p in b.payouts.values()]

    def test_bulk_mix_produces_every_state(self) -> None:
        state = _state()
        state.generate(1000, "m", {"success": 0.6, "failed": 0.2, "partial": 0.1, "pending": 0.1})
        finals = {p.final_code for p in state.payouts.values()}
        assert finals == {SUCCESS, FAILED, PARTIAL, None}

    def test_regions_are_assigned(self) -> None:
        state = _state()
        state.generate(100, "m", {"success": 1}, regions=["Korea", "nigeria"])
        assert {p.region for p in state.payouts.values()} == {"korea", "nigeria"}

    def test_listener_hears_each_transition_once(self) -> None:
        state = _state()
        seen: list[str] = []
        state.listeners.append(lambda p: seen.append(p.status))
        state.put(state.make_payout("T1", "3060414594", "success", pending_polls=1))
        for _ in range(4):
            _poll(state, "T1")
        assert seen == [SUCCESS]

    def test_sweep_finishes_timed_payouts_without_polls(self) -> None:
        clock = ManualClock()
        state = _state(clock=clock)
        state.put(state.make_payout("T1", "3060414594", "failed", pending_seconds=10))
        assert state.sweep() == 0
        clock.advance(10)
        assert state.sweep() == 1
        assert state.payouts[MERCHANT, "T1"].status == FAILED

    def test_clear_forgets_payouts_and_reseeds(self) -> None:
        state = _state()
        state.generate(3, "m", {"success": 1})
        state.clear(seed=77)
        assert state.payouts == {}
        assert state.seed == 77
        assert "3060414594" in state.merchants

    def test_generated_merchant_credentials_follow_the_seed(self) -> None:
        a, b = SimulatorState(seed=3), SimulatorState(seed=3)
        ma, mb = a.add_merchant(), b.add_merchant()
        assert (ma.merchant_no, ma.secret) == (mb.merchant_no, mb.secret)
        assert len(ma.merchant_no) == 10
        assert len(ma.secret) == 32
