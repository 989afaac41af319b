"""Normalised sine positional encoding (DETR style) for NCHW feature maps.

Computed in float32 as the official model does, then cast to the feature dtype: the official
code leaves it in float32, which breaks a plain ``.half()`` model.
"""
import math

import torch


def sine_position_encoding(feature, num_feats=128, temperature=10000.0):
    """Return a (B, 2*num_feats, H, W) encoding: y features first, then x; sin/cos interleaved."""
    b, _, h, w = feature.shape
    device = feature.device
    eps = 1e-6
    scale = 2 * math.pi
    # Cumulative position of every pixel (1..H, 1..W), normalised so the last one maps to 2*pi.
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
    y = y / (y[-1:] + eps) * scale
    x = x / (x[-1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos_y = _interleave_sin_cos(y[:, None] / dim_t)  # (H, F)
    pos_x = _interleave_sin_cos(x[:, None] / dim_t)  # (W, F)
    pos = torch.cat([
        pos_y[:, None, :].expand(h, w, num_feats),
        pos_x[None, :, :].expand(h, w, num_feats),
    ], dim=2)
    pos = pos.permute(2, 0, 1).unsqueeze(0).expand(b, -1, -1, -1)
    return pos.to(feature.dtype)


def _interleave_sin_cos(t):
    """Even columns -> sin, odd columns -> cos, stored pairwise as [sin0, cos1, sin2, cos3, ...]."""
    return torch.stack([t[:, 0::2].sin(), t[:, 1::2].cos()], dim=2).flatten(1)
