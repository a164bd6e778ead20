"""Training and sampling speed of our MLX models against PyTorch twins, on this machine.

    uv pip install torch          # the CPU build; see the README (benchmark-only peer)
    uv run python benchmarks/train_speed.py [--batch-sizes 128,512] [--models ae,vae,ddpm] [--json]

For each model we build a PyTorch module with the same architecture and
parameter count (nn.Conv2d(k3, s2) where we use Down, nn.ConvTranspose2d(k4, s2)
where we use Up), feed both the same batch, warm up, then time alternating
blocks of steps so machine noise hits both alike. Reported: median ms/step,
images/s, the MLX/PyTorch throughput ratio, model FLOPs per step (counted
from the twin's layer shapes: forward x 3 for forward + backward) and the
achieved GFLOP/s against a float32 GEMM peak measured in the same run.
Run it with nothing else on the machine: PyTorch's OpenMP threads slow down
~10x when another process shares the cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mlx_generative  # noqa: E402,F401  (loads the fast BLAS before mlx.core)
import mlx.core as mx  # noqa: E402
import mlx.optimizers as optim  # noqa: E402
import numpy as np  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402

from mlx_generative.families import FAMILIES  # noqa: E402
from mlx_generative.families.ddpm.samplers import DDPMSampler, sample_loop  # noqa: E402
from mlx_generative.families.ddpm.schedule import Schedule  # noqa: E402
from mlx_generative.families.ddpm.unet import TinyUNet, UNetArgs  # noqa: E402
from mlx_generative.runtime import blas, parallel  # noqa: E402
from mlx_generative.runtime.info import gemm_gflops  # noqa: E402
from mlx_generative.training.options import TrainOptions, owned_by, resolve  # noqa: E402
from mlx_generative.training.trainer import make_train_step  # noqa: E402

try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
except ImportError:  # PyTorch is the peer we measure against, never a package dependency
    torch = None


# ---- PyTorch twins (same layers, same parameter counts) ----------------------------

if torch is not None:

    class TorchAE(tnn.Module):
        def __init__(self, latent=64, c=(32, 64), variational=False):
            super().__init__()
            self.variational = variational
            self.enc = tnn.Sequential(
                tnn.Conv2d(1, c[0], 3, 2, 1), tnn.ReLU(), tnn.Conv2d(c[0], c[1], 3, 2, 1), tnn.ReLU(), tnn.Flatten()
            )
            feats = 7 * 7 * c[1]
            self.to_mu = tnn.Linear(feats, latent)
            self.to_logvar = tnn.Linear(feats, latent) if variational else None
            self.project = tnn.Linear(latent, feats)
            self.dec = tnn.Sequential(
                tnn.ConvTranspose2d(c[1], c[0], 4, 2, 1), tnn.ReLU(), tnn.ConvTranspose2d(c[0], 1, 4, 2, 1)
            )
            self.c2 = c[1]

        def decode(self, z):
            return self.dec(F.relu(self.project(z)).view(-1, self.c2, 7, 7))

        def forward(self, x):
            h = self.enc(x)
            if not self.variational:
                return self.decode(self.to_mu(h))
            mu, logvar = self.to_mu(h), self.to_logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return self.decode(z), mu, logvar

    class TorchResBlock(tnn.Module):
        def __init__(self, cin, cout, tdim, groups):
            super().__init__()
            self.n1, self.c1 = tnn.GroupNorm(groups, cin), tnn.Conv2d(cin, cout, 3, padding=1)
            self.t = tnn.Linear(tdim, cout)
            self.n2, self.c2 = tnn.GroupNorm(groups, cout), tnn.Conv2d(cout, cout, 3, padding=1)
            self.skip = tnn.Conv2d(cin, cout, 1) if cin != cout else None

        def forward(self, x, temb):
            h = self.c1(F.silu(self.n1(x))) + self.t(temb)[:, :, None, None]
            h = self.c2(F.silu(self.n2(h)))
            return h + (self.skip(x) if self.skip is not None else x)

    class TorchUNet(tnn.Module):
        def __init__(self, c=(16, 32, 64), tdim=128, groups=8):
            super().__init__()
            c1, c2, c3 = c
            self.c1 = c1
            self.time = tnn.Sequential(tnn.Linear(c1, tdim), tnn.SiLU(), tnn.Linear(tdim, tdim))
            self.stem = tnn.Conv2d(1, c1, 3, padding=1)
            self.down1, self.enc2 = tnn.Conv2d(c1, c2, 3, 2, 1), TorchResBlock(c2, c2, tdim, groups)
            self.down2, self.mid = tnn.Conv2d(c2, c3, 3, 2, 1), TorchResBlock(c3, c3, tdim, groups)
            self.up2, self.dec2 = tnn.ConvTranspose2d(c3, c2, 4, 2, 1), TorchResBlock(2 * c2, c2, tdim, groups)
            self.up1, self.out = tnn.ConvTranspose2d(c2, c1, 4, 2, 1), tnn.Conv2d(2 * c1, 1, 3, padding=1)

        def forward(self, x, t):
            half = self.c1 // 2
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
            args = t.float()[:, None] * freqs[None]
            temb = self.time(torch.cat([torch.sin(args), torch.cos(args)], dim=-1))
            stem = self.stem(x)
            skip = self.enc2(self.down1(F.silu(stem)), temb)
            h = self.mid(self.down2(skip), temb)
            h = self.dec2(torch.cat([self.up2(h), skip], 1), temb)
            return self.out(F.silu(torch.cat([self.up1(h), stem], 1)))


def count_forward_flops(model, *inputs) -> int:
    """2 * MACs of every conv, transposed conv and linear layer, from output shapes."""
    flops = [0]

    def hook(module, args, out):
        if isinstance(module, tnn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            flops[0] += 2 * out.numel() * module.in_channels * k
        elif isinstance(module, tnn.ConvTranspose2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            flops[0] += 2 * args[0].numel() * module.out_channels * k
        elif isinstance(module, tnn.Linear):
            flops[0] += 2 * out.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(*inputs)
    for h in handles:
        h.remove()
    return flops[0]


# ---- the step functions under test -----------------------------------------------------


def mlx_case(kind: str, batch: int, x: np.ndarray, shards: int):
    """(step() -> None, parameter count) for our MLX model, its batch split over ``shards`` streams
    with one BLAS thread each, as the trainer does. The family supplies the network and its loss
    as training does, at the guide's settings (T = 6, linear schedule) and lr 1e-3."""
    family = FAMILIES[kind]
    opts = resolve(kind, TrainOptions(lr=1e-3, **({"schedule": "linear"} if "schedule" in owned_by(kind) else {})))
    mx.random.seed(0)
    model = family.build(family.model_args(opts))
    scalars = {k: mx.array(v) for k, v in family.scalars_at(opts)(10**9).items()}  # after warm-up: beta 1
    step, state = make_train_step(model, optim.Adam(1e-3, bias_correction=True), family.loss_fn(opts), shards=shards)
    xb = mx.array(x * 2 - 1 if family.scale == "symmetric" else x)

    def run():
        with parallel.blas_threads_for(shards):
            out = step(xb, scalars)
            mx.eval(out, state)

    return run, sum(v.size for _, v in tree_flatten(model.parameters()))


def _torch_ae(xb, batch):
    model = TorchAE()
    return model, lambda: F.mse_loss(torch.sigmoid(model(xb)), xb), count_forward_flops(model, xb)


def _torch_vae(xb, batch):
    model = TorchAE(latent=32, variational=True)

    def loss_fn():
        logits, mu, logvar = model(xb)
        bce = F.binary_cross_entropy_with_logits(logits, xb, reduction="sum") / batch
        kl = 0.5 * torch.sum(mu**2 + logvar.exp() - logvar - 1) / batch
        return bce + kl

    return model, loss_fn, count_forward_flops(model, xb)


def _torch_ddpm(xb, batch):
    model = TorchUNet()
    sched = Schedule.create(6)
    sab = torch.from_numpy(np.array(sched.sqrt_alphas_cumprod))
    s1ab = torch.from_numpy(np.array(sched.sqrt_one_minus_alphas_cumprod))
    x0 = xb * 2 - 1

    def loss_fn():
        t = torch.randint(0, 6, (batch,))
        noise = torch.randn_like(x0)
        xt = sab[t].view(-1, 1, 1, 1) * x0 + s1ab[t].view(-1, 1, 1, 1) * noise
        return F.mse_loss(model(xt, t), noise)

    return model, loss_fn, count_forward_flops(model, x0, torch.zeros(batch, dtype=torch.long))


# Each family's PyTorch twin: (model, loss_fn, forward FLOPs) for a batch.
TORCH_TWINS = {"ae": _torch_ae, "vae": _torch_vae, "ddpm": _torch_ddpm}


def torch_case(kind: str, batch: int, x: np.ndarray):
    """(step() -> None, parameter count, forward FLOPs per step) for the PyTorch twin."""
    torch.manual_seed(0)
    xb = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    model, loss_fn, flops = TORCH_TWINS[kind](xb, batch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()

    return run, sum(p.numel() for p in model.parameters()), flops


# Idle worker threads spin for a while before they sleep (OpenBLAS's, PyTorch's OpenMP):
# starting a block right after the other engine's block would share the cores with them.
PAUSE_S = 0.5


def timed_blocks(cases: dict, warmup: int, rounds: int, steps: int) -> dict[str, float]:
    """Median seconds per step of each case, timing alternating blocks."""
    for run in cases.values():
        for _ in range(warmup):
            run()
    samples = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            time.sleep(PAUSE_S)
            start = time.perf_counter()
            for _ in range(steps):
                run()
            samples[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(s) for name, s in samples.items()}


def sampling_cases(T: int, n: int, shards: int):
    """DDPM sampling of n images in T steps: ours (MLX) and the twin's (PyTorch, no_grad)."""
    mx.random.seed(0)
    model = TinyUNet(UNetArgs())
    sched = Schedule.create(T)

    denoise = parallel.sharded_map(mx.compile(model), shards)  # as the DDPM family's sample() does

    def ours():
        with parallel.blas_threads_for(shards):
            mx.eval(sample_loop(denoise, DDPMSampler(sched, "beta"), (n, 28, 28, 1), mx.random.key(0)))

    cases = {"mlx": ours}
    if torch is not None:
        tmodel = TorchUNet().eval()
        betas = torch.from_numpy(np.array(sched.betas))
        alphas, s1ab = 1 - betas, torch.from_numpy(np.array(sched.sqrt_one_minus_alphas_cumprod))
        post = torch.from_numpy(np.array(sched.posterior_variance))

        def theirs():
            with torch.no_grad():
                x = torch.randn(n, 1, 28, 28)
                for t in reversed(range(T)):
                    eps = tmodel(x, torch.full((n,), t, dtype=torch.long))
                    x = (x - (1 - alphas[t]) / s1ab[t] * eps) / alphas[t].sqrt()
                    if t > 0:
                        x = x + post[t].sqrt() * torch.randn_like(x)

        cases["torch"] = theirs
    return cases


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", default="128,512")
    p.add_argument("--models", default="ae,vae,ddpm")
    p.add_argument("--rounds", type=int, default=5, help="alternating timed blocks per engine")
    p.add_argument("--steps", type=int, default=3, help="steps per timed block")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--sampling-T", default="6,50", help="DDPM sampling benchmarks, '' to skip")
    p.add_argument("--shards", type=int, help="CPU streams per MLX batch (default: the trainer's, "
                   "one per core); 1 measures the unsplit step")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = p.parse_args(argv)
    if torch is None:
        print("PyTorch is not installed: this benchmark measures MLX against it. Install the CPU build "
              "into the project venv (see README, 'Benchmarks'), then run again.", file=sys.stderr)
        return 0
    torch.set_num_threads(os.cpu_count() or 1)
    peak = gemm_gflops(seconds=2.0)  # before the BLAS goes to one thread per shard
    parallel.keep_freed_buffers()  # as the trainer does
    report = {"machine": {"cpus": os.cpu_count(), "mlx": mx.__version__, "torch": torch.__version__,
                          "blas": blas.status().describe(), "gemm_peak_gflops": round(peak, 1)},
              "train": [], "sampling": []}
    rng = np.random.default_rng(0)
    for batch in [int(b) for b in args.batch_sizes.split(",") if b]:
        x = rng.random((batch, 28, 28, 1), dtype=np.float32)
        for kind in args.models.split(","):
            shards = args.shards or parallel.default_shards(batch)
            ours, n_ours = mlx_case(kind, batch, x, shards)
            theirs, n_theirs, fwd_flops = torch_case(kind, batch, x)
            assert n_ours == n_theirs, f"{kind}: twin has {n_theirs} parameters, ours {n_ours}"
            cases = {"mlx": ours, "torch": theirs}
            if shards > 1:  # the unsplit step in the same run: what the shards gain, free of drift
                cases["mlx_1"] = mlx_case(kind, batch, x, 1)[0]
            sec = timed_blocks(cases, args.warmup, args.rounds, args.steps)
            step_flops = 3 * fwd_flops  # backward ~ 2x forward
            row = {
                "model": kind, "batch": batch, "params": n_ours, "shards": shards,
                "mlx_ms": round(sec["mlx"] * 1e3, 1), "torch_ms": round(sec["torch"] * 1e3, 1),
                "mlx_img_s": round(batch / sec["mlx"]), "torch_img_s": round(batch / sec["torch"]),
                "ratio": round(sec["torch"] / sec["mlx"], 2),
                "mlx_1_shard_ms": round(sec.get("mlx_1", sec["mlx"]) * 1e3, 1),
                "gflop_per_step": round(step_flops / 1e9, 2),
                "mlx_gflops": round(step_flops / sec["mlx"] / 1e9, 1),
                "mlx_pct_peak": round(100 * step_flops / sec["mlx"] / 1e9 / peak, 1),
            }
            report["train"].append(row)
            if not args.json:
                print(json.dumps(row), flush=True)
    for T in [int(t) for t in args.sampling_T.split(",") if t]:
        n = 128
        shards = args.shards or parallel.default_shards(n)
        sec = timed_blocks(sampling_cases(T, n, shards), 1, args.rounds, 1)
        row = {"T": T, "n": n, "mlx_img_s": round(n / sec["mlx"]), "torch_img_s": round(n / sec["torch"]),
               "ratio": round(sec["torch"] / sec["mlx"], 2)}
        report["sampling"].append(row)
        if not args.json:
            print(json.dumps(row), flush=True)
    if args.json:
        print(json.dumps(report))
    else:
        print_tables(report)
    return 0


def print_tables(report: dict) -> None:
    m = report["machine"]
    print(f"\n{m['cpus']} CPUs, MLX {m['mlx']}, PyTorch {m['torch']}, GEMM peak {m['gemm_peak_gflops']} GFLOP/s")
    print(f"BLAS: {m['blas']}\n")
    print("| model | batch | params | MLX shards | MLX ms/step (1 shard) | PyTorch ms/step | MLX img/s | PyTorch img/s | ratio (MLX/PyTorch throughput) | GFLOP/step | MLX GFLOP/s (% peak) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["train"]:
        print(f"| {r['model']} | {r['batch']} | {r['params']:,} | {r['shards']} | {r['mlx_ms']} ({r['mlx_1_shard_ms']}) | {r['torch_ms']} | {r['mlx_img_s']} | "
              f"{r['torch_img_s']} | {r['ratio']} | {r['gflop_per_step']} | {r['mlx_gflops']} ({r['mlx_pct_peak']}%) |")
    if report["sampling"]:
        print("\n| DDPM sampling | n | MLX img/s | PyTorch img/s | ratio |")
        print("|---|---|---|---|---|")
        for r in report["sampling"]:
            print(f"| T = {r['T']} | {r['n']} | {r['mlx_img_s']} | {r['torch_img_s']} | {r['ratio']} |")


if __name__ == "__main__":
    sys.exit(main())
