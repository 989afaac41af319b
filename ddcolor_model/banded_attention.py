"""Cross-attention of the colour queries to a pixel map, computed in bands of pixel rows.

The official colour decoder keeps, per scale, the projected memory and memory + position (two
L x 256 maps, L = the map's pixels) for all nine layers, and every cross-attention layer makes
its keys and values (two more L x 256 maps) at once. At stride 4 (L = S^2 / 16) those four
maps are the largest part of the forward's activation peak.

Here nothing of size L x 256 is stored. Keys and values are made for one band of rows at a time
from the scale's *source* map, and the softmax over all pixels is accumulated across bands
(running maximum, running sum, running weighted values: the streaming softmax that flash
attention uses), which gives the same result as one softmax over all pixels.

The source of a scale is either the pixel decoder's map itself with the 1x1 input projection
folded into the key/value projections (``W_k (W_p f + b_p) = (W_k W_p) f + W_k b_p``; used
where the projection does not widen them, stride 4: 256 -> 256 channels, so no more work than
before), or the projected memory stored once (strides 8 and 16, where the source has 512
channels). The sine positional encoding is separable (its first half depends only on the row,
its second half only on the column), so its contribution to the keys is a per-row plus a
per-column vector, never a map.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

# Attention scores computed at once (heads x queries x band pixels, all images): 4 Mi values
# = 16 MiB in fp32. Small against the stride-4 maps at S >= 512 (L x 256 = 16 Mi values at
# S=1024), large enough that the per-band matmuls run at full speed.
SCORE_BAND_ELEMENTS = 4 * 2 ** 20


@dataclass
class AttentionSource:
    """What the cross-attention reads at one scale.

    feature: (B, C, H, W) map (any memory format); weight (E, C) / bias (E,): the projection
    from it to the decoder's memory (both None: the feature already is the memory, C = E);
    pos_y (H, F), pos_x (W, F): the separable positional encoding, added to the keys only.
    """
    feature: torch.Tensor
    weight: Optional[torch.Tensor]
    bias: Optional[torch.Tensor]
    pos_y: torch.Tensor
    pos_x: torch.Tensor


def _fold(proj_weight, proj_bias, source):
    """Key or value projection applied to the source directly: (weight (E, C), bias (E,))."""
    if source.weight is None:
        return proj_weight, proj_bias
    # In float32 even for a half-precision model: the product is tiny, its rounding is not.
    folded = proj_weight.float() @ source.weight.float()
    bias = proj_bias.float() + proj_weight.float() @ source.bias.float()
    return folded.to(proj_weight.dtype), bias.to(proj_weight.dtype)


def band_rows(heads, queries, batch, width, budget=SCORE_BAND_ELEMENTS):
    """Rows of the source per band so that one band's scores hold at most ``budget`` values."""
    return max(1, budget // (heads * queries * batch * width))


def banded_cross_attention(query, source, attn, budget=SCORE_BAND_ELEMENTS):
    """``attn(query, key=memory + pos, value=memory)`` of an ``nn.MultiheadAttention`` (no
    masks, no dropout), sequence-first: query (Q, B, E) -> (Q, B, E)."""
    num_q, batch, embed = query.shape
    heads = attn.num_heads
    head_dim = embed // heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
    w_k, b_k = _fold(w_k, b_k, source)
    w_v, b_v = _fold(w_v, b_v, source)
    half = source.pos_y.shape[1]
    key_rows = source.pos_y @ attn.in_proj_weight[embed:2 * embed, :half].t()  # (H, E)
    key_cols = source.pos_x @ attn.in_proj_weight[embed:2 * embed, half:].t()  # (W, E)

    # (B, heads, Q, d), scaled as scaled_dot_product_attention scales it.
    q = F.linear(query, w_q, b_q).view(num_q, batch, heads, head_dim).permute(1, 2, 0, 3)
    q = q * (1.0 / math.sqrt(head_dim))
    feature = source.feature
    _, _, rows, width = feature.shape
    step = band_rows(heads, num_q, batch, width, budget)
    best = q.new_full((batch, heads, num_q, 1), float("-inf"))
    total = q.new_zeros(batch, heads, num_q, 1)
    acc = q.new_zeros(batch, heads, num_q, head_dim)
    for top in range(0, rows, step):
        bottom = min(rows, top + step)
        band = feature[:, :, top:bottom, :].permute(0, 2, 3, 1)  # (B, h, W, C)
        keys = F.linear(band, w_k, b_k).add_(key_rows[top:bottom, None, :]).add_(key_cols)
        values = F.linear(band, w_v, b_v)
        del band
        keys = keys.view(batch, -1, heads, head_dim).permute(0, 2, 3, 1)  # (B, heads, d, P)
        values = values.view(batch, -1, heads, head_dim).transpose(1, 2)  # (B, heads, P, d)
        scores = torch.matmul(q, keys)  # (B, heads, Q, P)
        del keys
        new_best = torch.maximum(best, scores.amax(dim=-1, keepdim=True))
        weights = scores.sub_(new_best).exp_()
        rescale = (best - new_best).exp_()
        total = total.mul_(rescale).add_(weights.sum(dim=-1, keepdim=True))
        acc = acc.mul_(rescale).add_(torch.matmul(weights, values))
        best = new_best
        del scores, weights, values
    out = (acc / total).permute(2, 0, 1, 3).reshape(num_q, batch, embed)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)
