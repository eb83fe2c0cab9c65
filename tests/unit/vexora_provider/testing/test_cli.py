from __future__ import annotations

import sys

import pytest

from vexora_provider.testing.cli import build_parser, main
from vexora_provider.testing.faults import FaultRule


class TestBuildParser:
    def test_serve_options(self) -> None:
        args = build_parser().parse_args(
            [
                "serve",
                "--port",
                "0",
                "--seed",
                "42",
                "--payouts",
                "3000",
                "--mix",
                "success=0.6,failed=0.4",
                "--pending-polls",
                "1-3",
                "--latency-ms",
                "50",
                "--fault",
                "kind=http_503,probability=0.1",
                "--notify-url",
                "http://127.0.0.1:8080/vexora/callbacks/vexora_default",
            ]
        )
        assert args.notify_url == "http://127.0.0.1:8080/vexora/callbacks/vexora_default"
        assert (args.port, args.seed, args.payouts) == (0, 42, 3000)
        assert args.mix == {"success": 0.6, "failed": 0.4}
        assert args.pending_polls == (1, 3)
        assert args.fault == [FaultRule("http_503", probability=0.1)]

    def test_a_command_is_required(self) -> None:
        with pytest.raises(SystemExit):
            build_parser().parse_args([])


class TestMain:
    def test_refuses_a_non_loopback_host(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["serve", "--host", "0.0.0.0"]) == 2
        assert "loopback" in capsys.readouterr().err

    def test_says_which_extra_serving_needs(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setitem(sys.modules, "httptools", None)
        monkeypatch.delitem(sys.modules, "vexora_provider.testing.httpserver", raising=False)
        assert main(["serve", "--payouts", "3"]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("vexora-simulator: serving the Vexora simulator needs httptools")
        assert "pip install 'airflow-provider-vexora[testing]'" in captured.err
