"""Read the fenced code blocks of a documentation page, so tests can run exactly what it shows.

A block is what a reader copies: its language (``bash``, ``python``, ``text`` …), its optional
``title="…"`` (a file name to save it under, or ``terminal 2``) and the content tab it sits in
(``=== "From a wheel"``, for alternatives the reader picks one of).
"""

from __future__ import annotations

import re
import socket
import textwrap
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>.*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_TAB = re.compile(r'^=== "(?P<label>[^"]+)"\s*$')


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page.

    :param lang: the language after the fence (``""`` when none).
    :param title: the block's ``title="…"``, or ``None``.
    :param code: the content, dedented to the fence, ending with a newline.
    :param tab: the label of the content tab the block is in, or ``None``.
    :param line: the 1-based line of the opening fence.
    """

    lang: str
    title: str | None
    code: str
    tab: str | None
    line: int


def blocks(page: str | Path) -> list[Block]:
    """Every fenced block of ``page`` (a path, or a file name under ``docs/``), in order."""
    path = page if isinstance(page, Path) else DOCS / page
    lines = path.read_text().splitlines()
    found: list[Block] = []
    tab: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        tab_match = _TAB.match(line)
        if tab_match:
            tab = tab_match["label"]
        elif line and not line.startswith(" "):
            tab = None  # unindented text ends a tab's content
        fence = _FENCE.match(line)
        if fence is None:
            i += 1
            continue
        info = fence["info"].strip()
        lang = info.split()[0] if info and not info.startswith("{") else ""
        title = _TITLE.search(info)
        close = fence["indent"] + fence["fence"]
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != close:
            body.append(lines[i])
            i += 1
        code = textwrap.dedent("\n".join(body)) + "\n"
        opening = i - len(body)  # 1-based line number of the opening fence
        found.append(Block(lang, title["title"] if title else None, code, tab, opening))
        i += 1
    return found


def code_lines(page: str | Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of every line inside a fenced block of ``page``."""
    result = []
    for block in blocks(page):
        for offset, text in enumerate(block.code.splitlines(), start=1):
            result.append((block.line + offset, text))
    return result


def free_port() -> str:
    """A TCP port on loopback that was free a moment ago (pages use a fixed one, e.g. 8765)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def shows(printed: list[str], shown: list[str]) -> bool:
    """Whether the lines a page ``shown`` appear, one after another, among the ``printed`` ones."""
    return any(printed[i : i + len(shown)] == shown for i in range(len(printed) - len(shown) + 1))
