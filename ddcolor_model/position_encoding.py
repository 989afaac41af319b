"""Normalised sine positional encoding (DETR style), in its separable form.

The encoding of pixel (i, j) of an H x W map is ``cat(pos_y[i], pos_x[j])``: the first half
depends only on the row, the second only on the column, so the two (H, F) and (W, F) tables
are all that is ever built (the colour decoder adds their projections per row and per column).
Computed in float32 as the official model does, then cast to the feature dtype: the official
code leaves it in float32, which breaks a plain ``.half()`` model.
"""
import math

import torch


def sine_position_axes(height, width, num_feats=128, temperature=10000.0, device=None,
                       dtype=torch.float32):
    """(pos_y (H, F), pos_x (W, F)), F = num_feats; sin/cos interleaved in each."""
    eps = 1e-6
    scale = 2 * math.pi
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)

    def axis(n):
        # Cumulative position 1..n, normalised so the last one maps to 2*pi.
        t = torch.arange(1, n + 1, dtype=torch.float32, device=device)
        t = t / (t[-1:] + eps) * scale
        return _interleave_sin_cos(t[:, None] / dim_t).to(dtype)

    return axis(height), axis(width)


def _interleave_sin_cos(t):
    """Even columns -> sin, odd columns -> cos, stored pairwise as [sin0, cos1, sin2, cos3, ...]."""
    return torch.stack([t[:, 0::2].sin(), t[:, 1::2].cos()], dim=2).flatten(1)
