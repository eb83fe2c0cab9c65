from __future__ import annotations

import pytest

from vexora_provider.testing.faults import FAULT_KINDS, FaultPlan, FaultRule, parse_fault


class TestFaultRule:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"kind": "explode"}, "unknown fault kind"),
            ({"kind": "reset", "endpoint": "nope"}, "unknown endpoint"),
            ({"kind": "reset", "probability": 1.5}, "probability"),
        ],
    )
    def test_rejects_bad_rules(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            FaultRule(**kwargs)  # type: ignore[arg-type]

    def test_matches_endpoint_trade_and_nth(self) -> None:
        rule = FaultRule("http_503", "queryPayOutResult", trade_no="T1", nth=(1, 3))
        assert rule.matches("queryPayOutResult", "T1", 1)
        assert not rule.matches("queryPayOutResult", "T1", 2)
        assert not rule.matches("queryPayOutResult", "T2", 1)
        assert not rule.matches("queryBalance", "T1", 1)

    def test_fixed_uniform_and_lognormal_delays(self) -> None:
        assert FaultRule("latency", latency_ms=50).delay(0.9) == pytest.approx(0.05)
        assert FaultRule("latency", latency_ms=10, latency_max_ms=30).delay(0.5) == pytest.approx(0.02)
        lognormal = FaultRule("latency", latency_ms=40, latency_sigma=0.5)
        assert lognormal.delay(0.5) == pytest.approx(0.04)
        assert lognormal.delay(0.1) < 0.04 < lognormal.delay(0.9)

    def test_dict_round_trip(self) -> None:
        rule = FaultRule("http_429", "queryBalance", 0.25, nth=(2,), retry_after=7)
        assert FaultRule.from_dict(rule.to_dict()) == rule

    def test_from_dict_refuses_unknown_fields(self) -> None:
        with pytest.raises(ValueError, match="unknown fault fields"):
            FaultRule.from_dict({"kind": "reset", "colour": "red"})

    def test_parse_cli_spec(self) -> None:
        rule = parse_fault("kind=latency,endpoint=queryPayOutResult,probability=0.5,latency_ms=20,nth=1;2")
        assert rule == FaultRule("latency", "queryPayOutResult", 0.5, nth=(1, 2), latency_ms=20)
        with pytest.raises(ValueError, match="key=value"):
            parse_fault("http_503")


class TestFaultPlan:
    def test_latency_adds_up_and_first_other_fault_wins(self) -> None:
        plan = FaultPlan(
            [
                FaultRule("latency", latency_ms=10),
                FaultRule("code_5000"),
                FaultRule("latency", latency_ms=5),
                FaultRule("reset"),
            ]
        )
        delay, fault = plan.decide(0, "queryPayOutResult", "T1", 1)
        assert delay == pytest.approx(0.015)
        assert fault is not None
        assert fault.kind == "code_5000"

    def test_decisions_do_not_depend_on_call_order(self) -> None:
        plan = FaultPlan(
            [FaultRule("http_500", probability=0.3), FaultRule("latency", latency_ms=1, latency_max_ms=9)]
        )
        calls = [(f"T{i}", n) for i in range(100) for n in (1, 2, 3)]
        forward = {c: plan.decide(4, "queryPayOutResult", *c) for c in calls}
        backward = {c: plan.decide(4, "queryPayOutResult", *c) for c in reversed(calls)}
        assert forward == backward
        hits = sum(1 for _, fault in forward.values() if fault is not None)
        assert 45 < hits < 135  # ~30 % of 300, bounds far outside seed-to-seed spread

    def test_other_seed_other_faults(self) -> None:
        plan = FaultPlan([FaultRule("http_500", probability=0.5)])
        a = [plan.decide(1, "queryPayOutResult", f"T{i}", 1)[1] is None for i in range(64)]
        b = [plan.decide(2, "queryPayOutResult", f"T{i}", 1)[1] is None for i in range(64)]
        assert a != b

    def test_clear(self) -> None:
        plan = FaultPlan()
        plan.add(FaultRule("reset"))
        plan.clear()
        assert plan.decide(0, "queryBalance", "x", 1) == (0.0, None)

    def test_every_kind_is_a_valid_rule(self) -> None:
        assert [FaultRule(kind).kind for kind in FAULT_KINDS] == list(FAULT_KINDS)
