"""``vexora-simulator serve`` as a user runs it: a real process, port 0, SIGTERM."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration


def _signed(secret: str, **fields: str) -> dict[str, str]:
    text = "".join(f"{k}={v}" for k, v in sorted(fields.items())) + secret
    return {**fields, "sign": hashlib.md5(text.encode()).hexdigest()}


class TestCli:
    def test_serve_prints_url_and_credentials_and_stops_on_sigterm(self, tmp_path: Path) -> None:
        info_file = tmp_path / "sim.json"
        command = [
            sys.executable,
            "-m",
            "vexora_provider.testing",
            "serve",
            "--port",
            "0",
            "--seed",
            "42",
            "--payouts",
            "20",
            "--mix",
            "success=0.5,failed=0.5",
            "--pending-polls",
            "0",
            "--info-file",
            str(info_file),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("Vexora simulator listening on http://127.0.0.1:")
            deadline = time.monotonic() + 10
            while not info_file.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            info = json.loads(info_file.read_text())
            assert first.split()[-1] == info["url"]
            assert info["payouts"] == 20
            assert info["first_trade_no"] == "SIM00000000"
            body = _signed(info["secret"], tradeNo="SIM00000000", timestamp=str(int(time.time() * 1000)))
            with httpx.Client(base_url=info["base_url"], timeout=5, trust_env=False) as client:
                reply = client.post(
                    "/v1/vexora/queryPayOutResult", json=body, headers={"merchantNo": info["merchant_no"]}
                )
                assert reply.json()["code"] == "0000"
                assert reply.json()["data"]["status"] in ("0000", "00029")
                wrong = client.post(
                    "/v1/vexora/queryBalance",
                    json=_signed("x", timestamp="1"),
                    headers={"merchantNo": info["merchant_no"]},
                )
                assert wrong.json()["code"] == "8000"
            conn = json.loads(info["airflow_env"]["AIRFLOW_CONN_VEXORA_DEFAULT"])
            assert (conn["login"], conn["password"]) == (info["merchant_no"], info["secret"])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)

    def test_same_seed_same_credentials(self, tmp_path: Path) -> None:
        seen = []
        for run in range(2):
            info_file = tmp_path / f"{run}.json"
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "vexora_provider.testing",
                    "serve",
                    "--seed",
                    "7",
                    "--info-file",
                    str(info_file),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 10
                while not info_file.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
                info = json.loads(info_file.read_text())
                seen.append((info["merchant_no"], info["secret"]))
            finally:
                proc.send_signal(signal.SIGINT)
                assert proc.wait(timeout=15) == 0
        assert seen[0] == seen[1]
