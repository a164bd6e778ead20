"""Training options, declared once.

The options every family shares are declared here; each family declares those it
owns (``Family.options``) and its values for the ones left at None
(``Family.defaults``). Everything else is derived from those declarations:
  - ``TrainOptions``, the dataclass of the API's keywords and of config.json's "train";
  - ``resolve``: "applies to X only" checks, the family's defaults, range checks;
  - bin/train's and bin/sweep's flags (``cli/``) with their help and defaults;
  - the sweep rules (``Option.sweep``) and the docs' flag table (``flag_table``).
Resolving options probes no hardware: the shard count is decided where training starts.
"""

from __future__ import annotations

import dataclasses

from ..errors import UsageError
from ..families import FAMILIES, get_family
from ..families.base import FIXED, LEARNED, NOT_IN_SWEEPS, SAMPLING, Option, above, at_least, in_range

LR_SCHEDULES = ("constant", "cosine")

TRAINING = (
    Option("steps", int, None, "optimizer steps", check=at_least(0), group="training"),
    Option("batch_size", int, 128, "images per step", check=at_least(1), group="training"),
    Option("lr", float, None, "Adam learning rate", check=above(0), group="training"),
    Option("lr_schedule", str, None, "constant, or cosine decay to 1% of --lr over the run (after any "
           "--lr-warmup)", choices=LR_SCHEDULES, group="training"),
    Option("lr_warmup", int, None, "steps over which the learning rate rises linearly to --lr; 0 starts at --lr. "
           "A family's default is cut to a tenth of a shorter run's --steps", check=at_least(0), group="training"),
    Option("seed", int, 0, "seeds weights, data order and noise", group="training"),
    Option("clip_grad_norm", float, None, "clip the global gradient norm to this value", check=above(0),
           group="training"),
    Option("ema_decay", float, None, "keep an exponential moving average of the weights and save, sample "
           "and evaluate it; 0 is off", check=in_range(0, 1), group="training"),
    Option("ema_warmup", int, 10, "the average's decay at step t is min(--ema-decay, (1 + t) / (N + t)): until "
           "that reaches --ema-decay it averages about the last 1/(N - 1) of the steps so far",
           check=at_least(2), group="training"),
    Option("shards", int, None, "split each batch over this many CPU cores, each on its own MLX stream. "
           "Noise draws depend on it", check=at_least(1), sweep=FIXED, group="training",
           default_text="every core; 1 on a GPU"),
)
DATA_AND_OUTPUT = (
    Option("dataset", str, "mnist", "mnist (the shipped 10k sample when the full set is absent), "
           "mnist-sample, fashion-mnist, or idx: your own IDX files in --data-dir", group="data and output"),
    Option("data_dir", str, None, "the folder holding the data set's IDX files, and the only place looked",
           sweep=FIXED, group="data and output"),
    Option("limit_train", int, None, "use only the first N training images", check=at_least(1),
           group="data and output"),
    Option("out", str, "outputs", "parent folder of run directories", sweep=NOT_IN_SWEEPS, group="data and output"),
    Option("name", str, None, "run directory name", sweep=NOT_IN_SWEEPS, group="data and output",
           default_text="<kind>-<date>-<time>"),
    Option("log_every", int, 10, "steps per metrics.jsonl record", check=at_least(1), sweep=FIXED,
           group="data and output"),
    Option("eval_every", int, 0, "held-out evaluation interval", check=at_least(0), sweep=FIXED,
           group="data and output", default_text="a fifth of the run"),
    Option("checkpoint_every", int, 0, "checkpoint interval", check=at_least(0), sweep=FIXED,
           group="data and output", default_text="a fifth of the run"),
    Option("keep_checkpoints", int, 2, "how many checkpoints to keep", check=at_least(1), sweep=FIXED,
           group="data and output"),
    Option("progress", bool, True, "no progress output", sweep=FIXED, group="data and output", flag="--no-progress"),
)
COMMON = TRAINING + DATA_AND_OUTPUT
# Declared None so that each family gives its own value; training needs one.
REQUIRED = ("steps", "lr", "lr_schedule", "ema_decay")


def _declared() -> dict[str, Option]:
    """Every option by name: the common ones, then each family's in registry order."""
    options: dict[str, Option] = {}
    family_options = [o for family in FAMILIES.values() for o in family.options]
    for option in (*TRAINING, *family_options, *DATA_AND_OUTPUT):
        if options.setdefault(option.name, option) is not option:
            raise TypeError(f"option {option.name!r} is declared twice; share one declaration")
    return options


OPTIONS: dict[str, Option] = _declared()


def _to_dict(self) -> dict:
    return dataclasses.asdict(self)


TrainOptions = dataclasses.make_dataclass(
    "TrainOptions",
    [(o.name, o.type if o.default is not None else o.type | None, dataclasses.field(default=o.default))
     for o in OPTIONS.values()],
    namespace={"to_dict": _to_dict, "__module__": __name__},
)
TrainOptions.__doc__ = """Everything bin/train accepts, one field per declared option (``OPTIONS``).
None means "not set", or the family's default where it has one."""


# ---- who owns what --------------------------------------------------------------------


def owners(name: str) -> list[str]:
    """The families an option applies to: every one for a common option."""
    if any(o.name == name for o in COMMON):
        return list(FAMILIES)
    return [family.name for family in FAMILIES.values() if any(o.name == name for o in family.options)]


def owned_by(kind: str) -> list[str]:
    """The option names that apply to ``kind``, in declaration order."""
    return [name for name in OPTIONS if kind in owners(name)]


def given(options) -> list[str]:
    """The options set to something other than their declared default."""
    return [name for name, option in OPTIONS.items() if getattr(options, name) != option.default]


def check_owned(kind: str, names) -> None:
    """Name the first of ``names`` that does not apply to ``kind`` (e.g. --T for an ae)."""
    for name in names:
        holders = owners(name)
        if kind not in holders:
            owners_text = " and ".join(holders) if len(holders) < 3 else f"{', '.join(holders[:-1])} and {holders[-1]}"
            raise UsageError(f"{OPTIONS[name].cli_flag} applies to {owners_text} only, not {kind}")


def sweep_role(name: str) -> str:
    """LEARNED, SAMPLING, FIXED or NOT_IN_SWEEPS: how ``name`` enters a sweep."""
    return OPTIONS[name].sweep


def sweepable() -> list[str]:
    return [name for name, o in OPTIONS.items() if o.sweep in (LEARNED, SAMPLING)]


# ---- resolving ------------------------------------------------------------------------


def from_overrides(kind: str, overrides: dict) -> "TrainOptions":
    """``TrainOptions`` from the API's keywords, naming an unknown one."""
    unknown = [k for k in overrides if k not in OPTIONS]
    if unknown:
        raise UsageError(f"train(): unknown option {unknown[0]!r}")
    return TrainOptions(**overrides)


def resolve(kind: str, options) -> "TrainOptions":
    """A copy of ``options`` for ``kind``: every value checked, the family's defaults filled in.

    An option another family owns, set to anything but its default, is a mistake worth
    naming (--T for an ae); a default value given explicitly is harmless.
    """
    family = get_family(kind)
    opts = dataclasses.replace(options)
    check_owned(kind, given(opts))
    family.check_options(opts)
    warmup_given = opts.lr_warmup is not None
    family.fill_defaults(opts)
    for name in REQUIRED:
        if getattr(opts, name) is None:
            raise UsageError(f"{OPTIONS[name].cli_flag}: a {kind} has no default; give one")
    if not warmup_given:  # a family's warm-up (none if it gives none) never takes more than a tenth of a short run
        opts.lr_warmup = min(opts.lr_warmup or 0, opts.steps // 10)
    fifth = max(1, opts.steps // 5)
    opts.eval_every = opts.eval_every or fifth
    opts.checkpoint_every = opts.checkpoint_every or fifth
    check_values(opts)
    return opts


def check_values(opts) -> None:
    """Each option's declared range and choices, then the checks across options."""
    for name, option in OPTIONS.items():
        value = getattr(opts, name)
        if value is None:
            continue
        if option.choices and value not in option.choices:
            choices = list(_spelled_choices(option))
            expected = " or ".join(choices) if len(choices) < 3 else f"{', '.join(choices[:-1])} or {choices[-1]}"
            raise UsageError(f"{option.cli_flag} must be {expected}, got {value!r}")
        if option.check is not None and not option.check.ok(value):
            raise UsageError(f"{option.cli_flag} must be {option.check.expected}, got {value!r}")
    if opts.lr_warmup and opts.steps is not None and opts.lr_warmup > opts.steps:
        raise UsageError(f"--lr-warmup {opts.lr_warmup} is longer than the run (--steps {opts.steps})")
    if opts.shards is not None and not 1 <= opts.shards <= opts.batch_size:
        raise UsageError(f"--shards must be between 1 and --batch-size ({opts.batch_size}), got {opts.shards!r}")


def _spelled_choices(option: Option) -> tuple[str, ...]:
    """The choices as typed on the command line; "none" where None is one of them."""
    return (("none",) if none_is_a_choice(option) else ()) + tuple(option.choices)


def none_is_a_choice(option: Option) -> bool:
    """An option whose None stays None (no family fills it in), such as --binarize none."""
    return bool(option.choices) and option.default is None and not any(
        option.name in family.defaults for family in FAMILIES.values())


# ---- for people: help texts and the flag table ---------------------------------------


def default_text(option: Option) -> str | None:
    """What "(default ...)" says of an option, or None where it says nothing."""
    if option.default_text is not None:
        return option.default_text
    if option.type is bool:
        return None
    by_value: dict = {}  # each family's default, families that share one named together
    for family in FAMILIES.values():
        if option.name in family.defaults:
            by_value.setdefault(family.defaults[option.name], []).append(family.name)
    if len(by_value) == 1:
        return _format(next(iter(by_value)))
    if by_value:
        return ", ".join(f"{'/'.join(names)} {_format(value)}" for value, names in by_value.items())
    return None if option.default is None else _format(option.default)


def help_text(option: Option) -> str:
    """bin/train's help for an option: whose it is, what it does, its default."""
    holders = owners(option.name)
    prefix = "" if len(holders) == len(FAMILIES) else "/".join(holders) + ": "
    default = default_text(option)
    return prefix + option.help + (f" (default: {default})" if default else "")


def flag_table() -> str:
    """A Markdown table of every training option: flag, families, default, sweep role, help."""
    rows = ["| flag | applies to | default | in a sweep | what it does |", "|---|---|---|---|---|"]
    roles = {LEARNED: "swept", SAMPLING: "swept (sampling only)", FIXED: "one value", NOT_IN_SWEEPS: "-"}
    for option in OPTIONS.values():
        holders = owners(option.name)
        applies = "all" if len(holders) == len(FAMILIES) else ", ".join(holders)
        flag = option.cli_flag + ("" if option.type is bool else " " + _metavar(option))
        flag = flag.replace("|", "\\|")  # a bare | would end the table cell, even in code
        rows.append(f"| `{flag}` | {applies} | {default_text(option) or '-'} | {roles[option.sweep]} | "
                    f"{option.help} |")
    return "\n".join(rows) + "\n"


def _metavar(option: Option) -> str:
    if option.choices:
        return "|".join(_spelled_choices(option))
    return {int: "N", float: "X", str: "TEXT"}[option.type]


def _format(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
