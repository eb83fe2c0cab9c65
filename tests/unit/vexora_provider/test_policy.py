"""The success policy and the watch: the single place poke mode and the trigger judge a poll."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vexora_provider.exceptions import (
    Permanence,
    VexoraAPIError,
    VexoraAuthError,
    VexoraBudgetError,
    VexoraConfigError,
    VexoraHTTPError,
    VexoraInvalidTradeNoError,
    VexoraTransportError,
)
from vexora_provider.models import PayoutQueryError, PayoutState, PayoutStatus, StatusMap
from vexora_provider.policy import PayoutWatch, SuccessPolicy, next_poll_delay

CODES = {"success": "0000", "partial": "0001", "pending": "0015", "failed": "00029", "unknown": "0099"}


def status(trade_no: str, state: str) -> PayoutStatus:
    code = CODES[state]
    assert StatusMap.with_overrides().classify(code).value == state
    return PayoutStatus(
        trade_no=trade_no,
        platform_trade_no="P-" + trade_no,
        status_code=code,
        state=PayoutState(state),
        message=f"{state} message",
        amount=Decimal("10.50"),
        order_amount=None,
        pay_amount=None,
        success_time=None,
        raw={"status": code},
    )


def query_error(trade_no: str) -> PayoutQueryError:
    return PayoutQueryError(trade_no, VexoraHTTPError(http_status=503, trade_no=trade_no, transient=True))


def watch(*trade_nos: str, max_failures: int = 3, **policy: object) -> PayoutWatch:
    return PayoutWatch(
        trade_nos,
        SuccessPolicy.from_names(**{"success_states": ("success", "partial"), **policy}),
        max_failures,
    )


class TestSuccessPolicy:
    @pytest.mark.parametrize(
        ("state", "success_states", "fail_on_failed", "rejected"),
        [
            ("success", ("success", "partial"), True, False),
            ("partial", ("success", "partial"), True, False),
            ("failed", ("success", "partial"), True, True),
            ("failed", ("success", "partial"), False, False),
            ("partial", ("success",), True, True),
            ("partial", ("success",), False, False),
            ("failed", ("failed",), True, False),
            ("pending", ("success",), True, False),
            ("unknown", ("success", "partial"), True, True),
            ("unknown", ("success", "partial"), False, True),
        ],
    )
    def test_rejection(
        self, state: str, success_states: tuple[str, ...], fail_on_failed: bool, rejected: bool
    ) -> None:
        policy = SuccessPolicy.from_names(success_states, fail_on_failed=fail_on_failed)

        error = policy.rejection(status("T1", state).to_dict())

        assert (error is not None) is rejected
        if error is not None:
            assert (error.trade_no, error.payout_code, error.state) == ("T1", CODES[state], state)
            assert error.payout_message == f"{state} message"

    @pytest.mark.parametrize("names", [("pending",), ("unknown",), ("paid",), ()])
    def test_refuses_states_that_are_not_terminal(self, names: tuple[str, ...]) -> None:
        with pytest.raises(ValueError, match="success_states"):
            SuccessPolicy.from_names(names)

    def test_names_are_case_insensitive_and_sorted(self) -> None:
        policy = SuccessPolicy.from_names(["PARTIAL", "Success"])

        assert policy.success_state_names == ["partial", "success"]


class TestPayoutWatch:
    def test_success_once_every_payout_is_final(self) -> None:
        w = watch("A", "B")

        first = w.record([status("B", "success"), status("A", "pending")])
        second = w.record([status("A", "partial")])

        assert first.outcome == "waiting"
        assert w.to_poll() == []
        assert second.outcome == "success"
        assert [s["trade_no"] for s in second.statuses] == ["A", "B"]  # input order, not answer order

    def test_final_payouts_are_not_polled_again(self) -> None:
        w = watch("A", "B", "C")

        w.record([status("A", "success"), status("B", "pending")])

        assert w.to_poll() == ["B", "C"]

    def test_failed_payout_fails_at_once_and_names_it(self) -> None:
        w = watch("A", "B")

        verdict = w.record([status("A", "pending"), status("B", "failed")])

        assert (verdict.outcome, verdict.retryable) == ("failed", False)
        assert "'B'" in verdict.message
        assert "00029" in verdict.message

    def test_unknown_code_fails_and_points_at_status_map(self) -> None:
        verdict = watch("A").record([status("A", "unknown")])

        assert verdict.outcome == "failed"
        assert "0099" in verdict.message
        assert "status_map" in verdict.message

    def test_failed_queries_error_only_after_the_threshold(self) -> None:
        w = watch("A", "B", max_failures=3)

        verdicts = [w.record([status("A", "pending"), query_error("B")]) for _ in range(3)]

        assert [v.outcome for v in verdicts] == ["waiting", "waiting", "error"]
        assert verdicts[0].message.startswith("trade 'B': HTTP 503")
        assert "3 polls in a row" in verdicts[2].message
        assert verdicts[2].retryable

    def test_a_healthy_poll_resets_the_count(self) -> None:
        w = watch("A", max_failures=2)

        w.record([query_error("A")])
        w.record([status("A", "pending")])
        verdict = w.record([query_error("A")])

        assert verdict.outcome == "waiting"
        assert w.failed_polls == 1

    def test_a_query_failure_is_never_a_payout_failure(self) -> None:
        w = watch("A", max_failures=1)

        verdict = w.record([query_error("A")])

        assert verdict.outcome == "error"
        assert verdict.statuses == []  # nothing was said about the payout itself

    @pytest.mark.parametrize(
        "error",
        [
            VexoraConfigError("no host"),
            VexoraAuthError("refused", code="8000"),
            VexoraInvalidTradeNoError("too long", trade_no="A" * 40),
            VexoraTransportError("TLS certificate not trusted", permanence=Permanence.CONNECTION),
        ],
    )
    def test_permanent_errors_end_the_watch_at_once(self, error: VexoraConfigError) -> None:
        w = watch("A", max_failures=3)

        verdict = w.record([PayoutQueryError("A", error)])

        assert (verdict.outcome, verdict.retryable, verdict.cause) == ("error", False, error)

    @pytest.mark.parametrize("outage", [True, False], ids=["storage-down", "password-refused"])
    def test_a_budget_storage_outage_ends_the_watch_but_keeps_the_task_retries(self, outage: bool) -> None:
        error = VexoraBudgetError("budget_storage failed", outage=outage)
        for verdict in (
            watch("A").record([PayoutQueryError("A", error)]),
            watch("A").record_poll_error(error),
        ):
            assert (verdict.outcome, verdict.retryable) == ("error", outage)

    @pytest.mark.parametrize(
        "error",
        [VexoraHTTPError(http_status=404), VexoraAPIError(code="7777", msg="odd")],
        ids=["http-404", "undocumented-code"],
    )
    def test_call_permanence_counts_as_a_failed_poll(self, error: VexoraHTTPError) -> None:
        # Not worth an immediate retry, but a later poll may get another answer.
        assert error.permanence is Permanence.CALL
        w = watch("A", max_failures=2)
        assert w.record([PayoutQueryError("A", error)]).outcome == "waiting"
        assert w.record([PayoutQueryError("A", error)]).outcome == "error"

    @pytest.mark.parametrize(
        "error", [VexoraTransportError("read timeout after 10s"), VexoraAPIError(code="5000", msg="busy")]
    )
    def test_a_poll_failing_as_a_whole_counts_once(self, error: VexoraTransportError) -> None:
        w = watch("A", "B", max_failures=2)

        first = w.record_poll_error(error)
        second = w.record_poll_error(error)

        assert [first.outcome, second.outcome] == ["waiting", "error"]
        assert str(error) in second.message

    def test_known_statuses_outside_the_watch_are_dropped(self) -> None:
        w = PayoutWatch(
            ("A",),
            SuccessPolicy(),
            terminal={"A": status("A", "success").to_dict(), "Z": status("Z", "success").to_dict()},
        )

        assert w.to_poll() == []
        assert [s["trade_no"] for s in w.statuses()] == ["A"]

    def test_pending_summary_names_the_first_five(self) -> None:
        w = watch(*[f"T{i}" for i in range(7)])

        assert w.pending_summary() == "7 of 7 payouts not final yet: 'T0', 'T1', 'T2', 'T3', 'T4', …"


class TestNextPollDelay:
    @pytest.mark.parametrize(
        ("polls_done", "backoff", "max_wait", "expected"),
        [
            (1, False, None, 30.0),
            (5, False, 10.0, 30.0),
            (1, True, None, 30.0),
            (2, True, None, 60.0),
            (4, True, None, 240.0),
            (4, True, 100.0, 100.0),
        ],
    )
    def test_delay(self, polls_done: int, backoff: bool, max_wait: float | None, expected: float) -> None:
        assert next_poll_delay(30.0, polls_done, exponential_backoff=backoff, max_wait=max_wait) == expected
