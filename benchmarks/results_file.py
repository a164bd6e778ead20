"""What the benchmark scripts share: their runs' training time, and their section of RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path

from mlx_generative.training import checkpoint


def train_seconds(run_dir: Path) -> float | None:
    """A run's training wall time, summed over its resumed parts (None if it never finished)."""
    walls = [r["seconds"] for r in checkpoint.read_metrics(run_dir) if r.get("split") == "wall"]
    return round(sum(walls), 1) if walls else None


def write_section(path: Path, heading: str, begin: str, end: str, body: str) -> None:
    """Put ``body`` between the ``begin``/``end`` markers of RESULTS.md, replacing what was
    there; a file without them gets a new ``heading`` section at its end."""
    section = f"{begin}\n{body}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    else:
        text += f"\n## {heading}\n\n{section}\n"
    path.write_text(text)
