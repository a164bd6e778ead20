"""docs/reference.md: every flag of every command, written from the parsers themselves.

    uv run python -m mlx_generative.cli.reference > docs/reference.md

The training options come from their declarations (``training.options.flag_table``), the
other commands' flags from their argparse parsers, so the page cannot drift from the code;
``tests/docs`` fails when the committed page is stale.
"""

from __future__ import annotations

import argparse

from ..training.options import flag_table
from . import COMMANDS

INTRO = """# Command reference

Every flag of every command, generated from the code by
`uv run python -m mlx_generative.cli.reference > docs/reference.md` (a test fails when this page
is stale). Each command runs as `bin/<command>` under `uv run`, or as `python -m mlx_generative <command>`.
"""


def markdown() -> str:
    parts = [INTRO]
    for name, module in COMMANDS.items():
        parser = module.setup_arg_parser()
        parts.append(f"## `bin/{name}`\n\n{_one_line(parser.description)}\n")
        if name == "train":
            parts.append("`bin/train KIND`, KIND one of the families. Training options (also the keywords of "
                         "`mlx_generative.train`, and of `bin/sweep`, which takes comma-separated values):\n")
            parts.append(flag_table())
            parts.append("Launch and resume (`bin/train` only):\n")
            parts.append(_table(parser, only=("--ranks", "--resume", "--help")))
        else:
            parts.append(_table(parser))
        if parser.epilog:
            parts.append("```\n" + parser.epilog.strip() + "\n```\n")
    return "\n".join(parts)


def _table(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> str:
    rows = ["| argument | default | what it does |", "|---|---|---|"]
    for action in parser._actions:  # argparse keeps no public list of its arguments
        flags = action.option_strings or [action.metavar or action.dest]
        if only is not None and not set(flags) & set(only):
            continue
        shown = ", ".join(f"`{f}{_value(action)}`" for f in flags)
        default = action.default if action.default not in (None, False, argparse.SUPPRESS) else ""
        if isinstance(action, argparse._StoreFalseAction):
            default = ""
        rows.append(f"| {shown} | {f'`{default}`' if default != '' else '-'} | "
                    f"{_one_line(action.help or '').replace('%%', '%').replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def _value(action: argparse.Action) -> str:
    if not action.option_strings or action.nargs == 0:
        return ""
    if action.choices:
        return " " + "\\|".join(map(str, action.choices))  # a bare | would end the table cell
    return f" {action.metavar or action.dest.upper()}"


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


if __name__ == "__main__":
    print(markdown(), end="")
