"""Reports: the table (best values marked, metrics of other tasks unranked), the grids, the
figures, and the page as a browser shows it."""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from mlx_generative.errors import UsageError
from mlx_generative.experiments import plots, reports

SAMPLES_GRID = (8 * 30 + 2) * 2  # 8 images of 28 px + 2 px padding, drawn at 2x


# ---- the report -----------------------------------------------------------------------


class _Page(html.parser.HTMLParser):
    """The images a page references and the rows of its first table."""

    def __init__(self):
        super().__init__()
        self.images, self.rows, self.tables = [], 0, 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "table":
            self.tables += 1
        elif tag == "tr" and self.tables == 1:
            self.rows += 1


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG", path
        image.load()  # a truncated file fails here
        return image.size


def test_report_references_only_valid_pngs(ae_sweep):
    page = _Page()
    page.feed((ae_sweep / "report.html").read_text())
    assert page.rows == 1 + 2  # a header and one row per run
    sources = {unquote(src) for src in page.images}
    assert sources == {
        "latent_dim=4/samples.png", "latent_dim=4/reconstructions.png", "latent_dim=4/progress.gif",
        "latent_dim=8/samples.png", "latent_dim=8/reconstructions.png", "latent_dim=8/progress.gif",
        "figures/loss_curves.png", "figures/reconstructions.png", "figures/latent_map.png", "figures/interpolation.png",
    }
    for src in sources:
        if src.endswith(".gif"):
            with Image.open(ae_sweep / src) as gif:
                assert gif.format == "GIF" and gif.size == (SAMPLES_GRID, SAMPLES_GRID), src
        else:
            assert _png_size(ae_sweep / src)[0] > 100
    assert _png_size(ae_sweep / "latent_dim=4" / "samples.png") == (SAMPLES_GRID, SAMPLES_GRID)
    assert _png_size(ae_sweep / "figures" / "loss_curves.png") == (800, 420)  # 8 x 4.2 in at 100 dpi
    assert _png_size(ae_sweep / "figures" / "latent_map.png") == (1000, 460)  # two 5 x 4.6 in panels

    md = (ae_sweep / "report.md").read_text()
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table_rows) == 1 + 2
    assert table_rows[0].startswith("| latent_dim | held-out MSE/pixel")
    linked = {unquote(m) for m in re.findall(r"\]\(([^)]+\.(?:png|gif))\)", md)}
    assert linked == sources


def test_best_value_of_each_column_is_marked():
    headers, rows, marks = reports.table([
        _summary({"latent_dim": 4}, {"mse": 0.02, "bce": 0.09}, seconds=3.0),
        _summary({"latent_dim": 8}, {"mse": 0.01, "bce": 0.10}, seconds=3.0),
    ])
    assert headers == ["latent_dim", "held-out MSE/pixel", "held-out BCE/pixel", "train time (s)"]
    assert rows[1][:2] == ["8", "0.01"]
    assert marks == [[False, False, True, False], [False, True, False, False]]  # equal times: none marked


def test_the_kl_is_not_ranked():
    _, _, marks = reports.table([
        _summary({"beta_max": 1}, {"neg_elbo": 110.0, "bce": 90.0, "kl": 20.0}, kind="vae"),
        _summary({"beta_max": 4}, {"neg_elbo": 130.0, "bce": 120.0, "kl": 10.0}, kind="vae"),
    ])
    assert marks[1] == [False, False, False, False, False]


def test_eps_mse_is_not_ranked_across_T():
    runs = [_summary({"T": T}, {"mse": mse}, kind="ddpm", task=(T,)) for T, mse in ((4, 0.03), (8, 0.04))]
    assert reports.table(runs)[2] == [[False, False, False], [False, False, False]]
    same_T = [_summary({"lr": lr}, {"mse": mse}, kind="ddpm", task=(6,)) for lr, mse in ((1, 0.03), (2, 0.04))]
    assert reports.table(same_T)[2][0] == [False, True, False]


def _summary(settings, heldout, seconds=None, kind="ae", task=()):
    return reports.RunSummary(run_dir=Path("x"), kind=kind, task=task, caption="", settings=settings,
                             heldout=heldout, seconds=seconds)


def test_report_without_matplotlib_keeps_tables_and_grids(ae_sweep, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert not plots.matplotlib_available()
    html_path, md_path = reports.write_report(
        [ae_sweep / "latent_dim=4"], tmp_path, title="no plots", verbose=False)
    text = html_path.read_text()
    assert "need matplotlib" in text and "figures/" not in text
    assert "samples.png" in text and "<td" in text
    with pytest.raises(UsageError, match="plots need matplotlib"):
        plots.loss_curves(ae_sweep / "latent_dim=4")


def test_single_run_report_of_a_ddpm(ddpm_run):
    html_path, md_path = reports.write_run_report(ddpm_run.run_dir, verbose=False)
    assert html_path.parent == ddpm_run.run_dir
    page = _Page()
    page.feed(html_path.read_text())
    assert {unquote(s) for s in page.images} == {
        "samples.png", "denoising.png", "denoising.gif", "progress.gif", "figures/loss_curves.png",
        "figures/denoising.png"}
    assert page.rows == 2
    lines = md_path.read_text().splitlines()
    assert "| T | schedule | sigma | steps | lr | held-out eps-MSE | train time (s) |" in lines
    assert any(line.startswith("| 3 | cosine | posterior | 4 | 0.004 | ") for line in lines)


# ---- the page in a browser ------------------------------------------------------------


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


# Appended to a copy of the page: Chromium logs console messages but not a missing image.
IMAGE_CHECK = """<script>window.addEventListener("load", () => {
  for (const img of document.images) if (img.naturalWidth === 0) console.error("broken image " + img.src);
  console.log("images checked: " + document.images.length);
});</script>"""


def _render(page: Path, shot: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Open ``page`` headless with the image check; (console lines, images-checked lines)."""
    checked = page.with_name(f"checked-{page.name}")
    checked.write_text(page.read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,2000",
         "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", checked.as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
    )
    checked.unlink()
    assert shot.is_file(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    return [c for c in console if "images checked" not in c], [c for c in console if "images checked" in c]


@pytest.mark.skipif(_chromium() is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(ae_sweep, tmp_path):
    shot = tmp_path / "report.png"
    errors, checked = _render(ae_sweep / "report.html", shot, tmp_path)
    assert errors == []
    assert len(checked) == 1 and '"images checked: 10"' in checked[0]  # 4 grids, 2 progress.gif, 4 figures
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.shape == (2000, 1400)
    assert pixels.std() > 20  # text, tables and pictures, not a blank page

    # The check catches what it is for: a page whose picture is gone.
    broken = tmp_path / "broken.html"
    broken.write_text('<!doctype html><html><body><img src="gone.png"></body></html>')
    errors, _ = _render(broken, tmp_path / "broken.png", tmp_path)
    assert len(errors) == 1 and "broken image" in errors[0]


def test_an_ae_and_a_vae_keep_their_own_columns():
    headers, rows, _ = reports.table([
        _summary({"latent_dim": 64}, {"mse": 0.0045, "bce": 0.074}, kind="ae"),
        _summary({"latent_dim": 32}, {"neg_elbo": 110.0, "bce": 83.5, "kl": 26.6}, kind="vae"),
    ])
    assert headers[:7] == ["run", "latent_dim", "held-out MSE/pixel", "held-out BCE/pixel", "held-out -ELBO (nats)",
                           "held-out recon. (nats)", "held-out KL (nats)"]
    assert rows[0][2:7] == ["0.0045", "0.074", "", "", ""] and rows[1][2:7] == ["", "", "110", "83.5", "26.6"]
