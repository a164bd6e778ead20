"""The first run's kernels, built ahead from the record: MLX loads them instead of building
them, they compute what MLX's own builds compute, and a failed build changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import pytest

from mlx_generative.runtime import jit, prebuild

ROOT = Path(__file__).resolve().parents[2]
linux_with_gxx = pytest.mark.skipif(not sys.platform.startswith("linux") or jit.compiler() is None,
                                    reason="MLX builds CPU kernels with g++ on Linux")
# The guide's three commands (README), a few steps each. (At 3 steps the DDPM meets one kernel
# more, with a constant of its own, which MLX then builds itself.)
GUIDE = {
    "ae": ["--latent-dim", "64", "--limit-train", "10000"],
    "vae": ["--warmup-steps", "200", "--latent-dim", "32", "--limit-train", "10000"],
    "ddpm": ["--T", "6", "--batch-size", "128", "--limit-train", "10000"],
}
RERECORD = "run `uv run python benchmarks/record_kernels.py` and commit the record"


def train(kind: str, tmp_path: Path, name: str, **env) -> subprocess.CompletedProcess:
    """bin/train KIND (the guide's flags, 10 steps) with an empty kernel cache of its own."""
    tmpdir = tmp_path / f"tmp-{name}"
    tmpdir.mkdir()
    command = [sys.executable, "-m", "mlx_generative", "train", kind, *GUIDE[kind], "--steps", "10",
               "--eval-every", "5", "--no-progress", "--out", str(tmp_path), "--name", name]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TMPDIR": str(tmpdir), "XDG_CACHE_HOME": str(tmp_path / "cache"), **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def kernel_folder(tmp_path: Path, name: str) -> Path:
    return tmp_path / f"tmp-{name}" / "mlx" / mx.__version__ / "cpu"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the record is of MLX's Linux CPU kernels")
def test_the_installed_mlx_has_a_record_of_the_guide_commands():
    record = prebuild.load_record()
    assert record is not None, f"no kernel record for MLX {mx.__version__}: {RERECORD}"
    assert record["mlx"] == mx.__version__
    for kind in GUIDE:  # the kernels with the native kernels as installed here, too
        for key in {f"train {kind}", prebuild.record_key(f"train {kind}")}:
            names = record["commands"][key]
            assert len(names) >= 10 and all(name in record["sources"] for name in names), key


@linux_with_gxx
@pytest.mark.parametrize("kind", list(GUIDE))
def test_mlx_builds_nothing_itself_on_a_guide_commands_first_run(tmp_path, kind):
    train(kind, tmp_path, "ahead")
    folder = kernel_folder(tmp_path, "ahead")
    written = sorted(p.name for p in folder.glob("*.cpp"))  # MLX writes a source only to build it
    assert written == [], f"MLX built {len(written)} kernels the record lacks ({written[:3]}...): {RERECORD}"
    links = list(folder.glob("lib*.so"))
    assert len(links) >= 10 and all(p.is_symlink() and p.resolve().is_file() for p in links)


@linux_with_gxx
def test_prebuilt_kernels_train_the_very_same_weights(tmp_path):
    train("ae", tmp_path, "ahead")
    train("ae", tmp_path, "mlx", MLX_GENERATIVE_PREBUILD="off")
    assert not any(kernel_folder(tmp_path, "mlx").glob("mlx-generative-*.so")), "the switch turns it off"
    assert (tmp_path / "ahead" / "model.safetensors").read_bytes() == \
        (tmp_path / "mlx" / "model.safetensors").read_bytes()


def test_the_kernels_share_one_preamble_include():
    sources = {"a": f"{prebuild.INCLUDE_LINE}\nvoid a() {{}}\n", "b": f"{prebuild.INCLUDE_LINE}\nvoid b() {{}}\n"}
    combined = prebuild.combined_source(["a", "b"], sources)
    assert combined.count(prebuild.INCLUDE_LINE) == 1 and combined.startswith(prebuild.INCLUDE_LINE)
    assert "void a()" in combined and "void b()" in combined
    with pytest.raises(ValueError, match="kernel c"):
        prebuild.combined_source(["c"], {"c": "void c() {}\n"})


def test_a_failed_build_leaves_the_cache_to_mlx(tmp_path):
    sources = {"k1": f"{prebuild.INCLUDE_LINE}\nthis is not C++\n"}
    built = []
    prebuild._build("/bin/false", tmp_path, ["k1"], sources, built)
    assert built == [] and list(tmp_path.iterdir()) == [], "no library, no link, no temporary file"


@linux_with_gxx
def test_a_kernel_mlx_already_built_is_left_alone(tmp_path):
    ours = tmp_path / "libk1.so"
    ours.write_bytes(b"built by MLX")
    sources = {name: f"{prebuild.INCLUDE_LINE}\nextern \"C\" void {name}() {{}}\n" for name in ("k1", "k2")}
    built = []
    prebuild._build(jit.compiler(), tmp_path, ["k1", "k2"], sources, built)
    assert ours.read_bytes() == b"built by MLX" and not ours.is_symlink()
    assert (tmp_path / "libk2.so").is_symlink() and built == ["k2"]


def test_no_record_no_work(monkeypatch, tmp_path):
    monkeypatch.setattr(prebuild, "RECORDS", tmp_path)
    assert prebuild.start("train ae").wait() == []
    monkeypatch.setenv(prebuild.ENV_VAR, "off")
    assert prebuild.start("train ae").wait() == []
