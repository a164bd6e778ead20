"""argparse arguments made from option declarations, so every flag is written once."""

from __future__ import annotations

import argparse

from ..families import FAMILIES
from ..families.base import Option
from ..training.options import OPTIONS, help_text, none_is_a_choice


def add_option(group, option: Option, help: str | None = None, *, as_text: bool = False) -> None:
    """One declared option as a flag of ``group``. ``as_text``: take its value as text (a
    sweep's comma-separated values, typed later); switches stay switches."""
    help = (help if help is not None else help_text(option)).replace("%", "%%")
    if option.type is bool:  # --conditional (default False) or --no-progress (default True)
        if as_text:
            group.add_argument(option.cli_flag, dest=option.name, action="store_const", const=not option.default,
                               help=help)
        else:
            group.add_argument(option.cli_flag, dest=option.name, action="store_false" if option.default else
                               "store_true", help=help)
        return
    if as_text:
        group.add_argument(option.cli_flag, dest=option.name, metavar="V[,V...]", help=help)
        return
    choices = (("none",) if none_is_a_choice(option) else ()) + tuple(option.choices)
    group.add_argument(option.cli_flag, dest=option.name, type=option.type, choices=choices or None, help=help)


def none_to_python(args: dict) -> dict:
    """--binarize none and the like: where "none" is one of an option's choices, it means None."""
    return {k: (None if v == "none" and k in OPTIONS and none_is_a_choice(OPTIONS[k]) else v)
            for k, v in args.items()}


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """Every family's sampling options (bin/sample, bin/eval), each once, as --name."""
    declared: dict[str, list[tuple[str, Option]]] = {}
    for family in FAMILIES.values():
        for option in family.sampling_options:
            declared.setdefault(option.name, []).append((family.name, option))
    for name, owners in declared.items():
        # Families may give one flag their own meanings and choices (--sampler: ddpm's or a
        # flow's); the command line takes any, and the run's family checks its own.
        choices = tuple(dict.fromkeys(c for _, o in owners for c in o.choices))
        helps: dict[str, list[str]] = {}
        for family, option in owners:
            default = f" (default: {option.default_text})" if option.default_text else ""
            helps.setdefault(option.help + default, []).append(family)
        help = "; ".join(f"{'/'.join(families)} runs: {text}" for text, families in helps.items())
        first = owners[0][1]
        parser.add_argument(first.cli_flag, dest=name, type=first.type, choices=choices or None,
                            default=None, help=help.replace("%", "%%"))


def sampling_arguments(args) -> dict:
    """The sampling options a command line gave, by name."""
    names = {o.name for family in FAMILIES.values() for o in family.sampling_options}
    return {name: getattr(args, name) for name in names}
