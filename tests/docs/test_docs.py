"""The documentation tells the truth about the code: the reference page is current, every
link and picture exists, every command shown parses with the real argument parser, and
every Python snippet runs (on tiny settings) unless it says it is illustrative."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mlx_generative.cli import COMMANDS
from mlx_generative.cli.reference import markdown

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A Python block whose first line is this comment is shown, not run (it needs trained runs
# or minutes of training); every other block runs.
ILLUSTRATIVE = "# illustrative"


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block."""
    return re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def _commands(page: Path) -> list[str]:
    """Every `uv run bin/...` command on a page: in code blocks and in inline code."""
    text = page.read_text()
    found = []
    for _, body in _blocks(text):
        body = body.replace("\\\n", " ")
        found += [line.strip() for line in body.splitlines() if line.strip().startswith("uv run bin/")]
    found += re.findall(r"`(uv run bin/[^`]+)`", text)
    return found


def test_the_reference_page_is_current():
    page = ROOT / "docs" / "reference.md"
    assert page.is_file(), "write it: uv run python -m mlx_generative.cli.reference > docs/reference.md"
    assert page.read_text() == markdown(), \
        "docs/reference.md is stale: uv run python -m mlx_generative.cli.reference > docs/reference.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_and_picture_exists(page):
    text = page.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img [^>]*src="([^"]+)"', text)
    missing = []
    for target in targets:
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        if not (page.parent / target.split("#")[0]).exists():
            missing.append(target)
    assert not missing, f"{page.name} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_parses(page):
    for command in _commands(page):
        words = shlex.split(command.split(" #")[0])  # drop a trailing comment
        name = words[2].removeprefix("bin/")
        assert name in COMMANDS, f"{page.name}: {command}: no command {name}"
        parser = COMMANDS[name].setup_arg_parser()
        try:
            parser.parse_args(words[3:])
        except SystemExit as e:
            if e.code:  # --help exits 0
                pytest.fail(f"{page.name}: `{command}` does not parse")


def _python_blocks():
    for page in PAGES:
        for i, (language, body) in enumerate(_blocks(page.read_text())):
            if language == "python" and not body.startswith(ILLUSTRATIVE):
                yield pytest.param(body, id=f"{page.name}-{i}")


@pytest.mark.parametrize("snippet", list(_python_blocks()))
def test_every_python_snippet_runs(snippet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "<snippet>", "exec"), {})
