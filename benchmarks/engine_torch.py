"""The PyTorch side of the speed benchmark, run in its own process (train_speed.py starts it).

Never imports MLX: two engines in one process slow each other (OpenMP and OpenBLAS threads
keep spinning after each call). Prints one JSON object, or for `train` one line per
held-out evaluation.

    python benchmarks/engine_torch.py step --model ae --batch 128 [--warmup 5 --steps 30]
    python benchmarks/engine_torch.py sample --T 6 --n 128 [--ddim 50]
    python benchmarks/engine_torch.py train --model vae --max-steps 2000 --eval-every 25

The twins have our architectures (nn.Conv2d(k3, s2) where we use Down, nn.ConvTranspose2d(k4, s2)
where we use Up), parameter counts and initialisation (PyTorch's defaults are ours; our stride-1
convolutions start with zero biases and our decoders' logits at the mean pixel, so do these), and
`train` runs our recipes: the same data order, learning rates, KL warm-up, EMA and held-out figures.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
import time
from pathlib import Path

import engine_args
import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
MEAN_PIXEL_LOGIT = -1.9


# ---- the twins ------------------------------------------------------------------------


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
        with torch.no_grad():
            self.dec[-1].bias.fill_(MEAN_PIXEL_LOGIT)
        self.c2 = c[1]

    def decode(self, z):
        return self.dec(F.relu(self.project(z)).view(-1, self.c2, 7, 7))

    def encode(self, x):
        h = self.enc(x)
        return self.to_mu(h), (self.to_logvar(h) if self.variational else None)

    def forward(self, x):
        mu, logvar = self.encode(x)
        if not self.variational:
            return self.decode(mu)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decode(z), mu, logvar


def _conv(cin, cout, k, padding=0):
    """A stride-1 convolution as ours starts: PyTorch's weight init, a zero bias."""
    conv = tnn.Conv2d(cin, cout, k, padding=padding)
    tnn.init.zeros_(conv.bias)
    return conv


class TorchResBlock(tnn.Module):
    def __init__(self, cin, cout, tdim, groups):
        super().__init__()
        self.n1, self.c1 = tnn.GroupNorm(groups, cin), _conv(cin, cout, 3, padding=1)
        self.t = tnn.Linear(tdim, cout)
        self.n2, self.c2 = tnn.GroupNorm(groups, cout), _conv(cout, cout, 3, padding=1)
        self.skip = _conv(cin, cout, 1) if cin != cout else None

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
        self.stem = _conv(1, c1, 3, padding=1)
        self.down1, self.enc2 = tnn.Conv2d(c1, c2, 3, 2, 1), TorchResBlock(c2, c2, tdim, groups)
        self.down2, self.mid = tnn.Conv2d(c2, c3, 3, 2, 1), TorchResBlock(c3, c3, tdim, groups)
        self.up2, self.dec2 = tnn.ConvTranspose2d(c3, c2, 4, 2, 1), TorchResBlock(2 * c2, c2, tdim, groups)
        self.up1, self.out = tnn.ConvTranspose2d(c2, c1, 4, 2, 1), _conv(2 * c1, 1, 3, padding=1)

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
            flops[0] += 2 * out.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, tnn.ConvTranspose2d):
            flops[0] += 2 * args[0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, tnn.Linear):
            flops[0] += 2 * out.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(*inputs)
    for h in handles:
        h.remove()
    return flops[0]


# ---- the recipes: schedules, losses, held-out figures ----------------------------------


def cosine_betas(T: int, s: float = 0.008) -> np.ndarray:
    """Nichol & Dhariwal's schedule, as ours (families/ddpm/schedule.py)."""
    steps = np.arange(T + 1, dtype=np.float64)
    f = np.cos(((steps / T + s) / (1 + s)) * math.pi / 2) ** 2
    return np.minimum(1.0 - (f[1:] / f[0]) / (f[:-1] / f[0]), 0.999)


class Diffusion:
    def __init__(self, T: int):
        betas = cosine_betas(T)
        ab = np.cumprod(1.0 - betas)
        self.T = T
        self.betas = torch.tensor(betas, dtype=torch.float32)
        self.alphas = 1 - self.betas
        self.ab = torch.tensor(ab, dtype=torch.float32)
        prev = np.concatenate([[1.0], ab[:-1]])
        self.posterior = torch.tensor(betas * (1 - prev) / (1 - ab), dtype=torch.float32)

    def add_noise(self, x0, noise, t):
        ab = self.ab[t].view(-1, 1, 1, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def ae_objective(model, x, step):
    mse = F.mse_loss(torch.sigmoid(model(x)), x)
    return mse, {"mse": mse}


def vae_objective(model, x, step, warmup=200, beta_max=1.0):
    logits, mu, logvar = model(x)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    kl = 0.5 * torch.sum(mu**2 + logvar.exp() - logvar - 1) / len(x)
    beta = beta_max if warmup <= 0 else min(beta_max, step / warmup * beta_max)
    return bce + beta * kl, {"bce": bce, "kl": kl, "neg_elbo": bce + kl}


def ddpm_objective(model, x, step, diffusion: Diffusion):
    x0 = x * 2 - 1
    t = torch.randint(0, diffusion.T, (len(x0),))
    noise = torch.randn_like(x0)
    mse = F.mse_loss(model(diffusion.add_noise(x0, noise, t), t), noise)
    return mse, {"mse": mse}


RECIPES = {  # model -> (build, objective, lr, EMA decay, the held-out figure)
    "ae": (lambda: TorchAE(), ae_objective, 3e-3, 0.0, "mse"),
    "vae": (lambda: TorchAE(latent=32, variational=True), vae_objective, 2e-3, 0.0, "neg_elbo"),
    "ddpm": (lambda: TorchUNet(), None, 4e-3, 0.995, "mse"),
}


def heldout(kind, model, x, diffusion=None) -> float:
    """Our held-out figure (families/*: heldout), over the held-out images in batches of 128."""
    torch.manual_seed(1234)
    total = 0.0
    with torch.no_grad():
        for a in range(0, len(x), 128):
            batch = x[a : a + 128]
            if kind == "ddpm":
                x0 = batch * 2 - 1
                t = torch.arange(a, a + len(batch)) % diffusion.T
                noise = torch.randn_like(x0)
                value = F.mse_loss(model(diffusion.add_noise(x0, noise, t), t), noise)
            elif kind == "vae":
                value = vae_objective(model, batch, 10**9)[1]["neg_elbo"]
            else:
                value = ae_objective(model, batch, 0)[1]["mse"]
            total += float(value) * len(batch)
    return total / len(x)


# ---- the data: the shipped sample, split as our runs split it --------------------------


def sample_digits() -> tuple[np.ndarray, np.ndarray]:
    """(9,000 training, 1,000 held-out) float32 NCHW digits in [0, 1]: mnist-sample as we split it."""
    with gzip.open(ROOT / "data" / "mnist-sample" / "train-images-idx3-ubyte.gz") as f:
        raw = f.read()
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return images[:-1000], images[-1000:]


# ---- the commands ---------------------------------------------------------------------


def threads() -> dict:
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads()}


def step_command(args) -> dict:
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28)
    build, objective, lr, _, _ = RECIPES[args.model]
    model = build()
    diffusion = Diffusion(6)
    if args.model == "ddpm":
        objective = lambda m, b, s: ddpm_objective(m, b, s, diffusion)  # noqa: E731
        flops = count_forward_flops(model, x, torch.zeros(args.batch, dtype=torch.long))
    else:
        flops = count_forward_flops(model, x)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(i):
        opt.zero_grad(set_to_none=True)
        objective(model, x, i)[0].backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    # The median step, as engine_mlx.py reports it.
    return {"engine": "torch", "model": args.model, "batch": args.batch, "ms_per_step": float(np.median(times)) * 1e3,
            "ms_per_step_mean": float(np.mean(times)) * 1e3,
            "params": sum(p.numel() for p in model.parameters()), "gflop_per_step": 3 * flops / 1e9, **threads()}


def sample_command(args) -> dict:
    """Images per second of reverse diffusion: DDPM over all T steps, or DDIM over --ddim of them."""
    torch.manual_seed(0)
    model = TorchUNet().eval()
    diffusion = Diffusion(args.T)
    steps = list(reversed(range(args.T))) if not args.ddim else \
        [int(t) for t in np.unique(np.round(np.linspace(0, args.T - 1, args.ddim)).astype(int))[::-1]]

    def run():
        with torch.no_grad():
            x = torch.randn(args.n, 1, 28, 28)
            for i, t in enumerate(steps):
                eps = model(x, torch.full((args.n,), t, dtype=torch.long))
                if args.ddim:  # eta 0, x0 clipped, as our DDIMSampler
                    ab, ab_prev = diffusion.ab[t], diffusion.ab[steps[i + 1]] if i + 1 < len(steps) else torch.tensor(1.0)
                    x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
                    eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
                    x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
                else:
                    a = diffusion.alphas[t]
                    x = (x - (1 - a) / (1 - diffusion.ab[t]).sqrt() * eps) / a.sqrt()
                    if t > 0:
                        x = x + diffusion.posterior[t].sqrt() * torch.randn_like(x)
        return x

    run()  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"engine": "torch", "T": args.T, "ddim": args.ddim, "n": args.n,
            "images_per_s": args.n / float(np.median(times)), **threads()}


def train_command(args) -> None:
    """Train the model's recipe on the sample, printing each held-out evaluation as it comes
    ("step N: held-out NAME VALUE"); stop after --max-steps."""
    train, test = sample_digits()
    torch.manual_seed(args.seed)
    build, objective, lr, ema_decay, figure = RECIPES[args.model]
    model = build()
    diffusion = Diffusion(6)
    if args.model == "ddpm":
        objective = lambda m, b, s: ddpm_objective(m, b, s, diffusion)  # noqa: E731
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ema = [p.detach().clone() for p in model.parameters()] if ema_decay else None
    test_x = torch.from_numpy(test)
    per_epoch = len(train) // args.batch
    order = None
    for step in range(args.max_steps):
        epoch, position = divmod(step, per_epoch)
        if position == 0:  # the epoch's shuffle, as data/batches.py draws it
            order = np.random.default_rng([args.seed, epoch]).permutation(len(train))
        batch = torch.from_numpy(train[order[position * args.batch : (position + 1) * args.batch]])
        opt.zero_grad(set_to_none=True)
        objective(model, batch, step)[0].backward()
        opt.step()
        if ema is not None:  # training/trainer.py's EMA with warm-up
            decay = min(ema_decay, (1.0 + step) / (10.0 + step))
            with torch.no_grad():
                for e, p in zip(ema, model.parameters()):
                    e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        if (step + 1) % args.eval_every == 0:
            if ema is not None:
                raw = [p.detach().clone() for p in model.parameters()]
                with torch.no_grad():
                    for p, e in zip(model.parameters(), ema):
                        p.copy_(e)
            model.eval()
            value = heldout(args.model, model, test_x, diffusion)
            model.train()
            if ema is not None:
                with torch.no_grad():
                    for p, r in zip(model.parameters(), raw):
                        p.copy_(r)
            print(f"step {step + 1}: held-out {figure} {value:.6g}", flush=True)


def main(argv=None) -> int:
    p, sub = engine_args.parser(__doc__.split("\n\n")[0], list(RECIPES))
    t = sub.add_parser("train")
    t.add_argument("--model", required=True, choices=list(RECIPES))
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-steps", type=int, default=2000)
    t.add_argument("--eval-every", type=int, default=25)
    args = p.parse_args(argv)
    if args.command == "train":
        train_command(args)
        return 0
    print(json.dumps(step_command(args) if args.command == "step" else sample_command(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
