"""The documentation's form: code that fits the page, and no pointers outside this repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.docs_support import DOCS, blocks, code_lines

ROOT = DOCS.parent
PAGES = sorted(DOCS.glob("*.md"))
# What a code block shows without scrolling at 1220 px, the narrowest width at which
# mkdocs-material shows both sidebars (measured in Chromium; wider and narrower screens fit more).
CODE_WIDTH = 76
# Notes that only the project's authors can follow: other files of theirs, issue numbers.
OUTSIDE = re.compile(
    r"[a-z]+-anchors\b|\bvexora-api\b|airflow-beyond|\.\./shared|\bDESIGN\.md"
    r"|§|\bpitfall \d|\bissue \d|\bT6\b",
    re.IGNORECASE,
)


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / n for n in names if (ROOT / n).is_file() and (ROOT / n).suffix != ".lock"]


class TestPages:
    @pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
    def test_code_blocks_fit_the_page(self, page: Path) -> None:
        too_wide = [f"{page.name}:{n} ({len(t)})" for n, t in code_lines(page) if len(t) > CODE_WIDTH]
        assert too_wide == []

    @pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
    def test_every_code_block_names_its_language(self, page: Path) -> None:
        assert [b.line for b in blocks(page) if not b.lang] == []

    def test_every_page_is_in_the_navigation(self) -> None:
        config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
        listed = {next(iter(entry.values())) for entry in config["nav"]}
        assert listed == {p.name for p in PAGES}

    @pytest.mark.parametrize(
        ("page", "kind"), [("sensor.md", "sequenceDiagram"), ("operator.md", "flowchart TD")]
    )
    def test_diagrams(self, page: str, kind: str) -> None:
        diagrams = [b.code for b in blocks(page) if b.lang == "mermaid"]
        assert [d.splitlines()[0] for d in diagrams] == [kind]


class TestRepository:
    def test_nothing_points_outside_the_repository(self) -> None:
        hits = []
        for path in _tracked_text_files():
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                if OUTSIDE.search(line) and path != Path(__file__):
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
        assert hits == []


class TestReadme:
    def test_example_dag_loads(self, tmp_path: Path) -> None:
        from airflow.dag_processing.dagbag import DagBag

        (example,) = [b for b in blocks(ROOT / "README.md") if b.lang == "python"]
        (tmp_path / "readme_example.py").write_text(example.code)
        dagbag = DagBag(dag_folder=str(tmp_path))
        assert dagbag.import_errors == {}
        dag = dagbag.dags["payouts_settle_then_book"]
        assert dag.get_task("sync_to_warehouse").trigger_rule == "all_done"
        assert dag.get_task("book").upstream_task_ids == {"wait_for_payouts"}
