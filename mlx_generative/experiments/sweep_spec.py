"""What a sweep is: a grid of settings, the names of its runs, and its sweep.json.

Shared by sweeps.py (which trains the grid) and reports.py (which reads it back).
"""

from __future__ import annotations

import dataclasses
import itertools

from ..errors import UsageError
from ..families.base import FIXED
from ..training.options import OPTIONS, TrainOptions, sweepable

SWEEP_FILE = "sweep.json"


def flag(param: str) -> str:
    return OPTIONS[param].cli_flag if param in OPTIONS else "--" + param.replace("_", "-")


def format_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_values(param: str, text: str, sweeping: bool = True) -> list:
    """'16,32,64' -> [16, 32, 64], typed as the option ``param`` is declared."""
    fields = {f.name: f for f in dataclasses.fields(TrainOptions)}
    if param not in fields or (sweeping and param not in sweepable()):
        raise UsageError(f"{flag(param)} cannot be swept; sweepable: {', '.join(flag(p) for p in sweepable())}")
    kind_of = OPTIONS[param].type
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise UsageError(f"{flag(param)} {text!r}: expected comma-separated values, e.g. 16,32,64")
        try:
            if item.lower() == "none":
                values.append(None)
            elif kind_of is int:
                values.append(int(item))
            elif kind_of is float:
                values.append(float(item))
            else:
                values.append(item)
        except ValueError:
            expected = "integers" if kind_of is int else "numbers"
            raise UsageError(f"{flag(param)} {text!r}: expected {expected}, got {item!r}") from None
    if len(set(map(repr, values))) != len(values):
        raise UsageError(f"{flag(param)} {text!r}: a value is repeated")
    return values


def combinations(params: dict[str, list]) -> list[dict]:
    """The Cartesian product, the first parameter varying slowest."""
    names = list(params)
    return [dict(zip(names, values)) for values in itertools.product(*(params[n] for n in names))]


def run_name(settings: dict) -> str:
    """The directory name of one combination: 'warmup_steps=200_beta_max=4'."""
    return "_".join(f"{k}={format_value(v)}" for k, v in settings.items())


def default_name(kind: str, params: dict) -> str:
    return "-".join([kind, *params])


def swept_params(spec: dict) -> dict[str, list]:
    """sweep.json's swept settings, in the order given on the command line."""
    return dict(spec["params"])


def command_line(spec: dict) -> str:
    """The bin/sweep command that makes (or resumes) the sweep sweep.json describes."""
    args = [f"{flag(k)} {','.join(map(format_value, v))}" for k, v in swept_params(spec).items()]
    args += [f"{flag(k)} {format_value(v)}" for k, v in spec["common"].items()
             if v is not None and not isinstance(v, bool)]
    # Switches that change what the runs learn, such as --conditional (not --no-progress).
    args += [flag(k) for k, v in spec["common"].items()
             if isinstance(v, bool) and k in OPTIONS and v != OPTIONS[k].default and OPTIONS[k].sweep != FIXED]
    return " ".join(["bin/sweep", spec["kind"], *args])
