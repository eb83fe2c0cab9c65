"""``docs/quickstart.md``, run as written: every block of the page, nothing else in its place.

Two shells run side by side. One installs from a clone without make, from scratch, then runs
the make tab in the same clone (``make venv`` from scratch runs on a clean clone in CI, where
``make test`` starts with it). The other installs the wheel and goes on through every later step,
as a reader's terminal would: the simulator in the background ("terminal 2"), the connections,
the DAG file, ``airflow dags test``, the table, the DAG's own tests. Between the wheel's two
install commands the test checks what a worker gets from the bare wheel: the provider
registers, hook, sensor, trigger and operator import, and the simulator names its extra.

What differs from a reader's machine, in the open: ``git clone`` of the GitHub URL copies this
working tree (and keeps the copy when the second clone tab clones again), and the simulator's
port 8765 becomes a free one.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs_support import Block, blocks, free_port, shows

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
PAGE = "quickstart.md"
DOC_PORT = "8765"
WHEEL_TAB = "From a wheel"
BACKGROUND = "terminal 2"
TIMEOUT = 900

PRELUDE = """\
set -eo pipefail
git() {  # the page clones the GitHub repository; here, a copy of the working tree
  if [ "$1" != clone ]; then command git "$@"; return; fi
  if [ ! -e "$(basename "$2" .git)" ]; then cp -a "$QS_REPO" "$(basename "$2" .git)"; fi
}
"""

# What a worker gets from the bare wheel, checked between the wheel tab's two blocks.
WHEEL_PROBE = """\
pip check
python - <<'QS_EOF'
from importlib.metadata import requires

runtime = [r for r in requires("airflow-provider-vexora") if "extra ==" not in r]
assert {r.split(">")[0] for r in runtime} == {
    "aiohttp", "apache-airflow", "apache-airflow-providers-common-sql", "certifi", "httpx"
}, runtime
import vexora_provider.hooks.vexora
import vexora_provider.operators.payout_status
import vexora_provider.sensors.payout_status
import vexora_provider.triggers.payout_status
QS_EOF
airflow providers hooks --output json > hooks.json
python -c 'import json; hooks = {h["connection_type"]: h["class"] for h in json.load(open("hooks.json"))}
assert hooks["vexora"] == "vexora_provider.hooks.vexora.VexoraHook", hooks'
# Airflow 3.3 happens to pull httptools and uvloop (uvicorn[standard]); without them, as on a
# slimmer Airflow, serving must name the extra instead of failing deep inside an import.
pip uninstall -q -y httptools uvloop
if vexora-simulator serve --port 0 2> serve.err; then echo "served without httptools"; exit 1; fi
grep -F "pip install 'airflow-provider-vexora[testing]'" serve.err
echo "probe: bare wheel ok"
"""

# After each clone tab: what its virtualenv must hold for the rest of the page.
CLONE_PROBE = """\
pip check
python -c 'import httptools, uvicorn, airflow.providers.sqlite, vexora_provider.testing.server'
vexora-simulator --help > /dev/null
echo "probe: $QS_TAB ok"
cd ..
"""
CLONE_TABS = ("From a clone, without make", "From a clone, with make")  # in this order


def _snapshot(target: Path) -> Path:
    """The working tree's files (tracked and new, not ignored), as a clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _environment(repo: Path, tmp: Path) -> dict[str, str]:
    """The reader's shell: no Airflow settings or virtualenv of ours, this interpreter's PATH."""
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["QS_REPO"] = str(repo)
    env["QS_SIM_LOG"] = str(tmp / "terminal-2.log")
    env["QS_SIM_PID"] = str(tmp / "terminal-2.pid")
    return env


def _marker(block: Block) -> str:
    return f"@@ block at line {block.line}"


def _script(page: list[Block], port: str) -> tuple[str, dict[int, Block]]:
    """One shell script for ``page``'s blocks, and the output block each command is expected to print."""
    parts = [PRELUDE]
    expected: dict[int, Block] = {}
    previous: Block | None = None
    for block in page:
        code = block.code.replace(DOC_PORT, port)
        if block.lang == "text":
            assert previous is not None, f"line {block.line}: output of what?"
            assert previous.lang == "bash", f"line {block.line}: output of what?"
            expected[previous.line] = Block(block.lang, None, code, None, block.line)
        elif block.lang == "bash" and block.title == BACKGROUND:
            parts.append(
                f'setsid bash -c {shlex.quote(code)} > "$QS_SIM_LOG" 2>&1 < /dev/null &\n'
                'echo $! > "$QS_SIM_PID"\n'
                'for _ in $(seq 300); do grep -q "listening on" "$QS_SIM_LOG" && break; sleep 0.1; done\n'
            )
        elif block.lang == "bash":
            parts.append(f"echo '{_marker(block)}'\n{code}")
        elif block.title:
            parts.append(f'mkdir -p "$(dirname {shlex.quote(block.title)})"\n')
            parts.append(f"cat > {shlex.quote(block.title)} <<'QS_EOF'\n{code}QS_EOF\n")
        else:
            raise AssertionError(f"line {block.line}: a {block.lang!r} block the test cannot run")
        previous = block
    return "".join(parts), expected


def _output_of(output: str, block: Block) -> list[str]:
    """The lines ``block``'s commands printed (between its marker and the next one)."""
    _, _, after = output.partition(_marker(block) + "\n")
    return after.split("@@ block at line ")[0].splitlines()


def _start(script: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen[str]) -> str:
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output


@dataclass(frozen=True)
class Runs:
    """What running the page gave: output and exit status per install tab, and the simulator's log.

    :param outputs: stdout and stderr of each tab's shell (the wheel tab's runs the whole page).
    :param codes: exit status of each tab's shell.
    :param expected: the output block the page shows after a command, by the command's line.
    :param simulator: what the "terminal 2" command printed.
    """

    outputs: dict[str, str]
    codes: dict[str, int]
    expected: dict[int, Block]
    simulator: str


@pytest.fixture(scope="module")
def page() -> list[Block]:
    return blocks(PAGE)


@pytest.fixture(scope="module")
def runs(page: list[Block], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Run the page: the clone tabs and the wheel tab with the rest of the page, side by side."""
    tmp = tmp_path_factory.mktemp("quickstart")
    env = _environment(_snapshot(tmp / "snapshot"), tmp)
    port = free_port()
    tabs: dict[str, list[Block]] = {}
    for block in page:
        if block.tab is not None:
            tabs.setdefault(block.tab, []).append(block)
    assert sorted(tabs) == sorted((*CLONE_TABS, WHEEL_TAB))
    wheel_install, wheel_extras = tabs[WHEEL_TAB]
    rest = [block for block in page if block.tab is None]

    install, _ = _script([wheel_install], port)
    extras, _ = _script([wheel_extras], port)
    main, expected = _script(rest, port)
    scripts = {
        "clones": "".join(
            f"QS_TAB={shlex.quote(label)}\n" + _script(tabs[label], port)[0] + CLONE_PROBE
            for label in CLONE_TABS
        ),
        WHEEL_TAB: install + WHEEL_PROBE + extras + main.removeprefix(PRELUDE),
    }
    processes = {
        label: _start(script, tmp / label.replace(" ", "-"), env) for label, script in scripts.items()
    }
    try:
        outputs = {label: _finish(process) for label, process in processes.items()}
        codes = {label: process.returncode for label, process in processes.items()}
        log = Path(env["QS_SIM_LOG"])
        yield Runs(outputs, codes, expected, log.read_text() if log.exists() else "")
    finally:
        pid_file = Path(env["QS_SIM_PID"])
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)


def _tail(output: str) -> str:
    # pip's notes about this machine's package mirrors are noise here.
    lines = [line for line in output.splitlines() if not line.startswith("WARNING: Location")]
    return "\n".join(lines[-60:])


class TestQuickstartPage:
    def test_clone_installs(self, runs: Runs) -> None:
        assert runs.codes["clones"] == 0, _tail(runs.outputs["clones"])
        for tab in CLONE_TABS:
            assert f"probe: {tab} ok" in runs.outputs["clones"]

    def test_wheel_install_and_every_step_after_it(self, runs: Runs) -> None:
        output = runs.outputs[WHEEL_TAB]
        assert runs.codes[WHEEL_TAB] == 0, _tail(output) + "\n--- terminal 2:\n" + runs.simulator
        assert "probe: bare wheel ok" in output

    def test_printed_output_is_what_the_page_shows(self, page: list[Block], runs: Runs) -> None:
        by_line = {block.line: block for block in page}
        assert runs.expected, "the page shows no output"
        for line, shown in runs.expected.items():
            command = by_line[line]
            if command.title == BACKGROUND:
                printed = runs.simulator.splitlines()
            else:
                printed = _output_of(runs.outputs[WHEEL_TAB], command)
            assert shows(printed, shown.code.splitlines()), (
                f"docs/{PAGE} line {shown.line} shows:\n{shown.code}\nthe command printed:\n"
                + "\n".join(printed)
            )
