"""Callbacks to a real receiver on loopback (a stdlib HTTP server in a thread)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from vexora_provider.testing import ManualClock, VexoraSimulator
from vexora_provider.testing.callbacks import is_loopback_url


class Receiver:
    """Answers ``fail`` to the first ``failures`` callbacks, then ``OK``; records every body."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.bodies.append(data)
                answer = b"fail" if len(receiver.bodies) <= receiver.failures else b"OK"
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/vexora/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recv = Receiver()
    recv.thread.start()
    yield recv
    recv.server.shutdown()
    recv.server.server_close()


def md5_sign(body: dict[str, Any], secret: str) -> str:
    kept = sorted((k, v) for k, v in body.items() if k != "sign" and v not in (None, ""))
    return hashlib.md5(("".join(f"{k}={v}" for k, v in kept) + secret).encode()).hexdigest()


def poll(sim: VexoraSimulator, trade_no: str) -> None:
    with httpx.Client(transport=sim.transport()) as client:
        client.post(
            "http://sim/nigeria/v1/vexora/queryPayOutResult",
            json=sim.signed(tradeNo=trade_no),
            headers=sim.headers(),
        )


class TestCallbackDispatcher:
    def test_status_change_posts_a_signed_notification(self, receiver: Receiver) -> None:
        with VexoraSimulator(seed=1) as sim:
            sim.add_payout("T1", "success", pending_polls=1, amount="12.50", notify_url=receiver.url)
            poll(sim, "T1")
            assert sim.callbacks.wait_for(1, timeout=0.2) == []  # still pending: nothing to tell
            poll(sim, "T1")
            [delivery] = sim.callbacks.wait_for(1, timeout=10)
        assert delivery.ok
        [body] = receiver.bodies
        assert body["sign"] == md5_sign(body, sim.secret)
        assert {k: body[k] for k in ("tradeNo", "status", "amount", "message")} == {
            "tradeNo": "T1",
            "status": "0000",
            "amount": "12.50",
            "message": "success",
        }
        assert body["platFormTradeNo"].startswith("VX")
        assert len(body["successTime"]) == 19

    def test_retries_on_the_compressed_schedule_until_ok(self, receiver: Receiver) -> None:
        receiver.failures = 3
        with VexoraSimulator(seed=1, callback_time_scale=0.001) as sim:
            sim.add_payout("T1", "failed", notify_url=receiver.url)
            poll(sim, "T1")
            deliveries = sim.callbacks.wait_for(4, timeout=10)
        assert [(d.attempt, d.ok) for d in deliveries] == [(1, False), (2, False), (3, False), (4, True)]
        assert "expected 200 'OK'" in (deliveries[0].error or "")
        assert len({json.dumps(b, sort_keys=True) for b in receiver.bodies}) == 1  # same body each time

    def test_gives_up_after_the_schedule(self, receiver: Receiver) -> None:
        receiver.failures = 100
        with VexoraSimulator(seed=1, callback_schedule=(0.001, 0.001)) as sim:
            sim.add_payout("T1", "failed", notify_url=receiver.url)
            poll(sim, "T1")
            deliveries = sim.callbacks.wait_for(5, timeout=1)
        assert [d.attempt for d in deliveries] == [1, 2, 3]

    def test_timed_payout_calls_back_without_polls(self, receiver: Receiver) -> None:
        clock = ManualClock()
        with VexoraSimulator(seed=1, clock=clock) as sim:
            sim.callbacks.sweep_interval = 0.01
            sim.add_payout("T1", "partial", pending_seconds=60, notify_url=receiver.url)
            clock.advance(60)
            [delivery] = sim.callbacks.wait_for(1, timeout=10)
        assert delivery.body["status"] == "0001"

    def test_non_loopback_urls_are_never_called(self) -> None:
        with VexoraSimulator(seed=1) as sim:
            sim.add_payout("T1", notify_url="https://example.com/hook")
            poll(sim, "T1")
            [delivery] = sim.callbacks.wait_for(1, timeout=10)
        assert not delivery.ok
        assert delivery.status is None
        assert "loopback" in (delivery.error or "")

    def test_redeliver_sends_the_same_signed_notification_again(self, receiver: Receiver) -> None:
        with VexoraSimulator(seed=1) as sim:
            sim.add_payout("T1", "success", notify_url=receiver.url)
            poll(sim, "T1")
            sim.callbacks.wait_for(1, timeout=10)
            sim.callbacks.redeliver("T1")  # the receiver's OK was lost: Vexora sends it again
            deliveries = sim.callbacks.wait_for(2, timeout=10)
        assert [d.ok for d in deliveries] == [True, True]
        assert receiver.bodies[0] == receiver.bodies[1]

    def test_redeliver_needs_a_notify_url(self) -> None:
        with VexoraSimulator(seed=1) as sim:
            sim.add_payout("T1")
            with pytest.raises(ValueError, match="no notifyUrl"):
                sim.callbacks.redeliver("T1")
            with pytest.raises(KeyError):
                sim.callbacks.redeliver("NOPE")

    def test_bulk_payouts_call_back_without_polls(self, receiver: Receiver) -> None:
        clock = ManualClock()
        with VexoraSimulator(seed=1, clock=clock) as sim:
            sim.callbacks.sweep_interval = 0.01
            made = sim.create_payouts(3, {"failed": 1}, pending_seconds=30, notify_url=receiver.url)
            clock.advance(30)
            deliveries = sim.callbacks.wait_for(3, timeout=10)
        assert sorted(d.trade_no for d in deliveries) == made
        assert all(d.ok for d in deliveries)

    @pytest.mark.parametrize(
        ("url", "loopback"),
        [
            ("http://127.0.0.1:1/x", True),
            ("http://localhost/x", True),
            ("http://[::1]:8/x", True),
            ("http://127.5.5.5/x", True),
            ("https://example.com/x", False),
            ("http://10.0.0.1/x", False),
            ("ftp://127.0.0.1/x", False),
            ("not a url", False),
        ],
    )
    def test_is_loopback_url(self, url: str, loopback: bool) -> None:
        assert is_loopback_url(url) is loopback
