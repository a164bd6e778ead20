"""Layers chosen to stay on MLX's fast CPU path: convolutions as GEMMs, SiLU, GroupNorm, the conv encoder/decoder."""
