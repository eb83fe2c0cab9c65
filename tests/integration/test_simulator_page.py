"""``docs/simulator.md``'s examples, run as written: its tests with pytest, its scripts with
Python, its command against the output the page shows (on a free port instead of 8765)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docs_support import Block, blocks, free_port, shows

pytestmark = pytest.mark.integration

PAGE = "simulator.md"
DOC_PORT = "8765"
BIN = str(Path(sys.executable).parent)
INFO_KEYS = {
    "url", "base_url", "region", "merchant_no", "secret", "seed", "payouts",
    "first_trade_no", "last_trade_no", "admin_url", "airflow_env", "pid",
}  # fmt: skip


def _python(kind: str) -> list[Block]:
    tests = [b for b in blocks(PAGE) if b.lang == "python" and "\ndef test_" in b.code]
    return tests if kind == "tests" else [b for b in blocks(PAGE) if b.lang == "python" and b not in tests]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


class TestSimulatorPage:
    def test_every_block_is_run_here(self) -> None:
        page = blocks(PAGE)
        command, output = [b for b in page if b.lang != "python"]
        assert (command.lang, output.lang) == ("bash", "text")
        assert len(_python("tests")) == 2
        assert len(_python("scripts")) == 2

    def test_its_tests_pass(self, tmp_path: Path) -> None:
        for block in _python("tests"):
            (tmp_path / f"test_simulator_page_{block.line}.py").write_text(block.code)
        result = _run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)], tmp_path
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert f"{len(_python('tests'))} passed" in result.stdout

    @pytest.mark.parametrize("block", _python("scripts"), ids=lambda b: f"line-{b.line}")
    def test_its_scripts_run(self, block: Block, tmp_path: Path) -> None:
        result = _run([sys.executable, "-c", block.code], tmp_path)
        assert result.returncode == 0, result.stderr[-4000:]

    def test_the_command_prints_what_the_page_shows(self, tmp_path: Path) -> None:
        command, output = [b for b in blocks(PAGE) if b.lang != "python"]
        port = free_port()
        env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
        process = subprocess.Popen(
            ["bash", "-c", "exec " + command.code.replace(DOC_PORT, port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        info_file = tmp_path / "vexora-sim.json"
        deadline = time.monotonic() + 60
        while not info_file.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr  # "serves until SIGINT/SIGTERM and exits 0"
        shown = output.code.replace(DOC_PORT, port).splitlines()
        assert shows(stdout.splitlines(), shown), (
            f"the page shows:\n{output.code}\nthe command printed:\n{stdout}"
        )
        info = json.loads(info_file.read_text())
        assert set(info) == INFO_KEYS
        assert (info["merchant_no"], info["secret"], info["payouts"]) == (
            "9946265901",
            shown[3].split()[-1],
            3000,
        )
