"""Each family's notebook runs top to bottom, as a learner runs it, and is kept without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
from nbclient import NotebookClient  # noqa: E402  (after the skip: the dev group installs both)

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_every_family_has_a_notebook():
    assert [p.stem for p in NOTEBOOKS] == ["ae", "ddpm", "vae"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs_top_to_bottom(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), \
        f"{path.name} is committed with outputs; strip them"
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # a failing cell raises
    shown = [o for cell in code for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(shown) >= 3, f"{path.name} shows {len(shown)} pictures inline"
