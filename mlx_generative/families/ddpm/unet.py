"""The tiny UNet: eps_theta(x_t, t[, y]), a prediction of the noise in x_t.

It knows nothing of noise schedules: ``t`` is just a number to embed (schedule.py
decides what it means). Resolution path 28 -> 14 -> 7 and back, with skip
connections, GroupNorm + SiLU residual blocks, and the timestep added to every
block through a small MLP.

The residual blocks live at 14x14 and 7x7 only; full resolution has just the stem
and output convolutions: on MLX's CPU backend a layer costs more with its activation
size than with its FLOPs, and the digits' structure lives at 14x14
(benchmarks/RESULTS.md). SiLU, GroupNorm and the convolutions are the package's
CPU-friendly versions (nn/).

``attention`` adds a self-attention layer after the 7x7 middle block, so each position
reads every other directly, with weights that depend on the content (off by default:
the guide's architecture).

With ``num_classes`` > 0 the network is conditional: a label embedding is added to the
time embedding, so every block sees (t, y). Its extra last row is the "no label"
embedding (``null_label``): trained on with label dropout, the same network also
predicts the unconditional noise that classifier-free guidance needs
(samplers.classifier_free_guidance).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from ...nn.activations import silu
from ...nn.conv import Conv2d
from ...nn.layers import Down, Up, timestep_embedding
from ...nn.norm import GroupNorm, group_norm_silu
from ..base import BaseModelArgs


@dataclass
class UNetArgs(BaseModelArgs):
    channels: tuple[int, int, int] = (16, 32, 64)  # at full, 1/2 and 1/4 resolution
    time_dim: int = 128  # width of the timestep MLP
    groups: int = 8  # GroupNorm groups; must divide every channel count
    image_size: int = 28  # must be divisible by 4
    in_channels: int = 1
    num_classes: int = 0  # > 0: conditional on a label in 0 .. num_classes - 1
    attention: bool = False  # self-attention over the S/4 x S/4 pixels after the middle block


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice, timestep added in between, 1x1 skip when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1 = GroupNorm(groups, in_channels)
        self.conv1 = Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(time_dim, out_channels)
        self.norm2 = GroupNorm(groups, out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def __call__(self, x: mx.array, temb: mx.array) -> mx.array:
        # conv1(silu(norm1(x))) + time(temb): the (N, C) time embedding broadcast over H, W
        h = self.conv1(group_norm_silu(self.norm1, x), shift=self.time(temb))
        h = self.conv2(group_norm_silu(self.norm2, h))
        return h + (self.skip(x) if self.skip is not None else x)


class SelfAttention(nn.Module):
    """GroupNorm, then multi-head self-attention among all pixels, added back (residual).
    As in the DDPM UNet (Ho et al. 2020), which has it at 16x16."""

    def __init__(self, channels: int, groups: int, heads: int = 4):
        super().__init__()
        if channels % heads:
            raise ValueError(f"heads={heads} must divide channels={channels}")
        self.norm = GroupNorm(groups, channels)
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def __call__(self, x: mx.array) -> mx.array:
        n, h, w, c = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, h * w, 3, self.heads, c // self.heads)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (N, heads, pixels, c/heads)
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=(c // self.heads) ** -0.5)
        return x + self.proj(out.transpose(0, 2, 1, 3).reshape(n, h, w, c))


class TinyUNet(nn.Module):
    """eps_theta(x_t, t[, y]): (N, S, S, C), (N,)[, (N,)] -> (N, S, S, C)."""

    def __init__(self, args: UNetArgs):
        super().__init__()
        if args.image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {args.image_size}")
        if any(c % args.groups for c in args.channels[1:]):
            raise ValueError(f"groups={args.groups} must divide the channel counts {args.channels[1:]}")
        self.args = args
        c1, c2, c3 = args.channels
        t, g = args.time_dim, args.groups
        self.time_mlp = nn.Sequential(nn.Linear(c1, t), nn.SiLU(), nn.Linear(t, t))
        if args.num_classes:
            self.label_embedding = nn.Embedding(args.num_classes + 1, t)  # + the null label
        self.stem = Conv2d(args.in_channels, c1, 3, padding=1)  # S
        self.down1 = Down(c1, c2)  # S -> S/2
        self.enc2 = ResBlock(c2, c2, t, g)  # S/2
        self.down2 = Down(c2, c3)  # S/2 -> S/4
        self.mid = ResBlock(c3, c3, t, g)  # S/4
        if args.attention:
            self.attention = SelfAttention(c3, g)
        self.up2 = Up(c3, c2)  # S/4 -> S/2
        self.dec2 = ResBlock(2 * c2, c2, t, g)  # after concatenating the enc2 skip
        self.up1 = Up(c2, c1)  # S/2 -> S
        self.out = Conv2d(2 * c1, args.in_channels, 3, padding=1)  # after the stem skip

    @property
    def conditional(self) -> bool:
        return self.args.num_classes > 0

    @property
    def null_label(self) -> int:
        """The label index that means "no label" (unconditional), conditional models only."""
        return self.args.num_classes

    def __call__(self, x: mx.array, t: mx.array, y: mx.array | None = None) -> mx.array:
        """y: labels (N,) int32 for a conditional model; None (or null_label) for no label."""
        temb = self.time_mlp(timestep_embedding(t, self.args.channels[0]))
        if self.conditional:
            if y is None:
                y = mx.full(t.shape, self.null_label, dtype=mx.int32)
            temb = temb + self.label_embedding(y)
        stem = self.stem(x)  # (N, S, S, c1)
        skip = self.enc2(self.down1(silu(stem)), temb)  # (N, S/2, S/2, c2)
        h = self.mid(self.down2(skip), temb)  # (N, S/4, S/4, c3)
        if self.args.attention:
            h = self.attention(h)
        h = self.dec2(mx.concatenate([self.up2(h), skip], axis=-1), temb)
        h = mx.concatenate([self.up1(h), stem], axis=-1)  # (N, S, S, 2 * c1)
        return self.out(silu(h))
