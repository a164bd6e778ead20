"""bin/sweep and bin/report from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlx_generative.cli import main as cli_main
from mlx_generative.training import checkpoint

ROOT = Path(__file__).resolve().parents[2]


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


def test_bin_sweep_runs_from_a_shell(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "sweep"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "bin/sweep vae --warmup-steps 0,200,600 --beta-max 0.5,1,4" in result.stdout
