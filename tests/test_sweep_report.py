"""Sweeps and reports: one command per experiment, ending in something to look at."""

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

import mlx_generative as mg
from mlx_generative import checkpoint, plots, reports
from mlx_generative.cli import main as cli_main
from mlx_generative.errors import UsageError
from mlx_generative.sweeps import combinations, parse_values, plan, run_name

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(steps=4, batch_size=16, limit_train=64, log_every=1, eval_every=2, checkpoint_every=2, progress=False)
SAMPLES_GRID = (8 * 30 + 2) * 2  # 8 images of 28 px + 2 px padding, drawn at 2x


@pytest.fixture(scope="module")
def ae_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps")
    sweep_dir = mg.sweep("ae", {"latent_dim": [4, 8]}, out=out, eval_samples=40, verbose=False, **TINY)
    return sweep_dir


# ---- the grid -------------------------------------------------------------------------


def test_values_are_typed_like_the_flag():
    assert parse_values("latent_dim", "16,32,64") == [16, 32, 64]
    assert parse_values("beta_max", "0.5,1,4") == [0.5, 1.0, 4.0]
    assert parse_values("schedule", "linear,cosine") == ["linear", "cosine"]
    assert parse_values("binarize", "none,dynamic") == [None, "dynamic"]
    assert combinations({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}
    ]
    assert run_name({"warmup_steps": 200, "beta_max": 0.5}) == "warmup_steps=200_beta_max=0.5"


@pytest.mark.parametrize(
    "param, text, message",
    [
        ("latent_dim", "16,x", "expected integers, got 'x'"),
        ("latent_dim", "16,,32", "comma-separated"),
        ("latent_dim", "16,16", "repeated"),
        ("out", "a,b", "cannot be swept"),
        ("no_such_flag", "1,2", "cannot be swept"),
    ],
)
def test_bad_values_name_the_flag(param, text, message):
    with pytest.raises(UsageError, match=message):
        parse_values(param, text)


def test_every_combination_is_checked_before_anything_trains(tmp_path):
    with pytest.raises(UsageError, match="--latent-dim must be >= 1, got 0"):
        plan("ae", {"latent_dim": [8, 0]}, {}, tmp_path)
    with pytest.raises(UsageError, match="--T applies to ddpm only, not ae"):
        plan("ae", {"T": [4, 6]}, {}, tmp_path)
    with pytest.raises(UsageError, match="both swept and fixed"):
        plan("ae", {"latent_dim": [4, 8]}, {"latent_dim": 4}, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was created


# ---- the sweep ------------------------------------------------------------------------


def test_sweep_makes_one_run_per_combination(ae_sweep):
    spec = checkpoint.read_json(ae_sweep / "sweep.json")
    assert spec["runs"] == ["latent_dim=4", "latent_dim=8"]
    for name, latent in (("latent_dim=4", 4), ("latent_dim=8", 8)):
        run = mg.load(ae_sweep / name)
        assert run.config["model"]["latent_dim"] == latent
        assert run.config["train"]["steps"] == 4
        assert mg.encode(run, np.zeros((1, 28, 28), np.uint8)).shape == (1, latent)
        assert checkpoint.read_json(ae_sweep / name / "eval.json")["samples"]["n"] == 40


def test_rerunning_a_sweep_trains_nothing(ae_sweep, capsys):
    weights = ae_sweep / "latent_dim=4" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    mg.sweep("ae", {"latent_dim": [4, 8]}, out=ae_sweep.parent, eval_samples=40, report=False, **TINY)
    err = capsys.readouterr().err
    assert "2 runs (2 already done)" in err
    assert err.count("done earlier") == 2 and "training" not in err
    assert weights.stat().st_mtime_ns == before


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, capsys):
    out = tmp_path / "sweeps"
    # Two swept flags, given out of alphabetical order: the order names the runs and the columns.
    params = {"warmup_steps": [2], "beta_max": [0.5, 1.0]}
    sweep_dir = mg.sweep("vae", params, out=out, eval_samples=0, report=False, verbose=False, **TINY)
    finished = checkpoint.read_metrics(sweep_dir / "warmup_steps=2_beta_max=1")
    # Make the second run look killed after its step-2 checkpoint.
    run_dir = sweep_dir / "warmup_steps=2_beta_max=1"
    (run_dir / "model.safetensors").unlink()
    shutil.rmtree(run_dir / "checkpoints" / "step-00000004")
    checkpoint.truncate_metrics(run_dir, 2)
    mg.sweep("vae", params, out=out, eval_samples=0, **TINY)
    err = capsys.readouterr().err
    assert "beta_max=0.5: done earlier" in err and "beta_max=1: training 4 steps (resuming)" in err
    assert "| warmup_steps | beta_max | held-out -ELBO (nats)" in (sweep_dir / "report.md").read_text()
    resumed = checkpoint.read_metrics(run_dir)
    train = lambda records: [r["loss"] for r in records if r["split"] == "train"]  # noqa: E731
    assert train(resumed) == pytest.approx(train(finished), rel=1e-5)  # same batches, same noise


def test_a_run_stopped_before_its_first_checkpoint_starts_over_in_place(tmp_path):
    params = {"latent_dim": [4]}
    sweep_dir = mg.sweep("ae", params, out=tmp_path, eval_samples=0, report=False, verbose=False, **TINY)
    run_dir = sweep_dir / "latent_dim=4"
    for leftover in ("checkpoints", "model.safetensors", "extras.safetensors"):
        path = run_dir / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    mg.sweep("ae", params, out=tmp_path, eval_samples=0, verbose=False, **TINY)
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["figures", "latent_dim=4"]
    assert (run_dir / "model.safetensors").is_file() and (sweep_dir / "report.html").is_file()


def test_other_settings_under_the_same_name_are_refused(ae_sweep):
    with pytest.raises(UsageError, match="another --name"):
        mg.sweep("ae", {"latent_dim": [4, 8]}, out=ae_sweep.parent, eval_samples=0, **{**TINY, "steps": 5})
    with pytest.raises(UsageError, match="another --name"):
        mg.sweep("vae", {"latent_dim": [4, 8]}, out=ae_sweep.parent, name=ae_sweep.name, eval_samples=0, **TINY)


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
        "latent_dim=4/samples.png", "latent_dim=4/reconstructions.png",
        "latent_dim=8/samples.png", "latent_dim=8/reconstructions.png",
        "figures/loss_curves.png", "figures/reconstructions.png", "figures/latent_map.png", "figures/interpolation.png",
    }
    for src in sources:
        assert _png_size(ae_sweep / src)[0] > 100
    assert _png_size(ae_sweep / "latent_dim=4" / "samples.png") == (SAMPLES_GRID, SAMPLES_GRID)
    assert _png_size(ae_sweep / "figures" / "loss_curves.png") == (800, 420)  # 8 x 4.2 in at 100 dpi
    assert _png_size(ae_sweep / "figures" / "latent_map.png") == (1000, 460)  # two 5 x 4.6 in panels

    md = (ae_sweep / "report.md").read_text()
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table_rows) == 1 + 2
    assert table_rows[0].startswith("| latent_dim | held-out MSE/pixel")
    linked = {unquote(m) for m in re.findall(r"\]\(([^)]+\.png)\)", md)}
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
    runs = [_summary({"T": T}, {"mse": mse}, kind="ddpm", config={"diffusion": {"T": T}}) for T, mse in ((4, 0.03), (8, 0.04))]
    assert reports.table(runs)[2] == [[False, False, False], [False, False, False]]
    same_T = [_summary({"lr": lr}, {"mse": mse}, kind="ddpm", config={"diffusion": {"T": 6}}) for lr, mse in ((1, 0.03), (2, 0.04))]
    assert reports.table(same_T)[2][0] == [False, True, False]


def _summary(settings, heldout, seconds=None, kind="ae", config=None):
    return reports.RunSummary(run_dir=Path("x"), kind=kind, config=config or {}, caption="", settings=settings,
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


# ---- the figures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory):
    return mg.train("ddpm", out=str(tmp_path_factory.mktemp("d")), name="d", verbose=False, T=3, **TINY)


def test_interpolation_ends_are_the_reconstructions(ae_sweep):
    run = mg.load(ae_sweep / "latent_dim=8")
    images = mg.load_dataset("mnist-sample", "test").images[:3]
    path = mg.interpolate(run, images, images[::-1], steps=5)
    assert path.shape == (3, 5, 28, 28) and path.dtype == np.uint8
    np.testing.assert_array_equal(path[:, 0], mg.reconstruct(run, images))
    np.testing.assert_array_equal(path[:, -1], mg.reconstruct(run, images[::-1]))
    with pytest.raises(UsageError, match="steps must be >= 2"):
        mg.interpolate(run, images, images, steps=1)


def test_pca_finds_the_widest_direction():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 3)) * np.array([10.0, 1.0, 0.1])
    points, (x_label, y_label) = plots.project_2d(codes)
    assert points.shape == (500, 2)
    assert np.std(points[:, 0]) == pytest.approx(10.0, rel=0.1) and np.std(points[:, 1]) == pytest.approx(1.0, rel=0.1)
    assert x_label.startswith("PC1 (99%")
    with pytest.raises(UsageError, match="pca or tsne"):
        plots.project_2d(codes, "umap")


def test_tsne_without_scikit_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(UsageError, match="scikit-learn"):
        plots.project_2d(np.zeros((10, 4)), "tsne")


def test_latent_map_has_a_legend_of_every_class(ae_sweep):
    fig = plots.latent_map([ae_sweep / "latent_dim=4", ae_sweep / "latent_dim=8"], names=["A", "B"], n=300)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().splitlines()[0] for ax in axes] == ["A", "B"]
    for ax in axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(i) for i in range(10)]
        assert ax.get_xlabel().startswith("PC1") and ax.get_ylabel().startswith("PC2")


def test_denoising_strip_has_a_column_per_step(ddpm_run):
    fig = plots.denoising_strip(ddpm_run, n=2)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["t=3", "t=2", "t=1", "t=0"]
    with pytest.raises(UsageError, match="needs ae or vae runs"):
        plots.latent_map(ddpm_run)


def test_single_run_report_of_a_ddpm(ddpm_run):
    html_path, md_path = reports.write_run_report(ddpm_run.run_dir, verbose=False)
    assert html_path.parent == ddpm_run.run_dir
    page = _Page()
    page.feed(html_path.read_text())
    assert {unquote(s) for s in page.images} == {
        "samples.png", "denoising.png", "figures/loss_curves.png", "figures/denoising.png"}
    assert page.rows == 2
    lines = md_path.read_text().splitlines()
    assert "| T | schedule | sigma | steps | lr | held-out eps-MSE | train time (s) |" in lines
    assert any(line.startswith("| 3 | cosine | posterior | 4 | 0.004 | ") for line in lines)


# ---- the command line -----------------------------------------------------------------


def _cli(argv, capsys):
    code = cli_main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_sweep_and_report(tmp_path, capsys):
    flags = ["--steps", "2", "--batch-size", "8", "--limit-train", "32", "--no-progress"]
    code, out = _cli(["sweep", "ae", "--loss", "mse,bce", "--out", str(tmp_path), "--eval-samples", "0", *flags], capsys)
    assert code == 0, out
    sweep_dir = tmp_path / "ae-loss"
    assert "[1/2] ae loss=mse" in out and "[2/2] ae loss=bce" in out
    assert (sweep_dir / "report.html").is_file()
    assert checkpoint.read_json(sweep_dir / "sweep.json")["common"]["steps"] == 2  # one value: fixed
    assert "bin/sweep ae --loss mse,bce" in (sweep_dir / "report.md").read_text()

    (sweep_dir / "report.html").unlink()
    assert _cli(["report", str(sweep_dir)], capsys)[0] == 0
    assert (sweep_dir / "report.html").is_file()
    code, out = _cli(["report", str(sweep_dir / "loss=mse"), str(sweep_dir / "loss=bce")], capsys)
    assert code == 2 and "--out" in out
    code, out = _cli(["report", str(sweep_dir / "loss=mse"), str(sweep_dir / "loss=bce"),
                      "--out", str(tmp_path / "cmp")], capsys)
    assert code == 0, out
    assert "| loss |" in (tmp_path / "cmp" / "report.md").read_text()  # the setting the runs differ in


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "ae", "--latent-dim", "8,x"], "--latent-dim '8,x': expected integers"),
        (["sweep", "ae", "--T", "4,6"], "--T applies to ddpm only"),
        (["sweep", "ddpm", "--schedule", "linear,square"], "--schedule must be linear or cosine"),
        (["sweep", "vae", "--steps", "10"], "give at least one setting to sweep"),
        (["report", "/no/such/run"], "/no/such/run: no such directory"),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path):
    code, out = _cli([*argv, *(["--out", str(tmp_path)] if argv[0] == "sweep" else [])], capsys)
    assert code == 2 and message in out and "Traceback" not in out


def test_bin_sweep_runs_from_a_shell(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "sweep"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "bin/sweep vae --warmup-steps 0,200,600 --beta-max 0.5,1,4" in result.stdout


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
    assert len(checked) == 1 and '"images checked: 8"' in checked[0]
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.shape == (2000, 1400)
    assert pixels.std() > 20  # text, tables and pictures, not a blank page

    # The check catches what it is for: a page whose picture is gone.
    broken = tmp_path / "broken.html"
    broken.write_text('<!doctype html><html><body><img src="gone.png"></body></html>')
    errors, _ = _render(broken, tmp_path / "broken.png", tmp_path)
    assert len(errors) == 1 and "broken image" in errors[0]


def test_an_interrupted_sweep_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from mlx_generative import api
    from mlx_generative.trainer import TrainingInterrupted

    def stopped(*args, **kwargs):
        raise TrainingInterrupted(3, 15)

    monkeypatch.setattr(api, "train", stopped)
    with pytest.raises(TrainingInterrupted):
        mg.sweep("ae", {"latent_dim": [4, 8]}, out=tmp_path, eval_samples=0, **TINY)
    err = capsys.readouterr().err
    assert "[1/2] ae latent_dim=4" in err and "Run the same command again to resume" in err
    assert "[2/2]" not in err  # the sweep stops with the run


def test_reconstruction_rows_put_each_run_under_the_originals(ae_sweep):
    fig = plots.reconstruction_rows([ae_sweep / "latent_dim=4", ae_sweep / "latent_dim=8"], n=5, names=["A", "B"])
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["held-out originals", "A", "B"]
    assert ax.get_images()[0].get_array().shape == (3 * 30 + 2, 5 * 30 + 2)  # 3 rows of 5 images, 2 px apart


def test_an_ae_and_a_vae_keep_their_own_columns():
    headers, rows, _ = reports.table([
        _summary({"latent_dim": 64}, {"mse": 0.0045, "bce": 0.074}, kind="ae"),
        _summary({"latent_dim": 32}, {"neg_elbo": 110.0, "bce": 83.5, "kl": 26.6}, kind="vae"),
    ])
    assert headers[:7] == ["run", "latent_dim", "held-out MSE/pixel", "held-out BCE/pixel", "held-out -ELBO (nats)",
                           "held-out recon. (nats)", "held-out KL (nats)"]
    assert rows[0][2:7] == ["0.0045", "0.074", "", "", ""] and rows[1][2:7] == ["", "", "110", "83.5", "26.6"]
