"""The DDColor network: ConvNeXt encoder, pixel decoder, colour decoder and refine conv.

The last x4 up-stage, the query/pixel einsum and the refine conv run as one fused colour head
(color_head.py); the stored parameters keep the official names.

Input: gray RGB (B, 3, S, S) in [0, 1], S a multiple of 32. Output: ab (B, 2, S, S) in Lab units.
Built with the release config of the four official checkpoints.
"""
import torch
import torch.nn as nn

from .color_decoder import MultiScaleColorDecoder
from .color_head import fused_color_head
from .convnext import Encoder
from .pixel_decoder import PixelShuffleUpsample, build_up_blocks
from .spectral_norm import SpectralNormConv2d

VARIANTS = ("large", "tiny")
NUM_QUERIES = 100
NUM_SCALES = 3
DEC_LAYERS = 9
NF = 512
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Decoder(nn.Module):
    """Pixel decoder (up-blocks + x4 last shuffle) feeding the multi-scale colour decoder."""

    def __init__(self, encoder_dims, nf=NF):
        super().__init__()
        self.layers = build_up_blocks(encoder_dims, nf)
        self.last_shuf = PixelShuffleUpsample(nf // 2, nf // 2, scale=4, with_bn=False)
        self.color_decoder = MultiScaleColorDecoder(
            in_channels=[nf, nf, nf // 2], num_queries=NUM_QUERIES, num_scales=NUM_SCALES,
            dec_layers=DEC_LAYERS)

    def forward(self, features):
        """(last up-block output at stride 4, colour embeddings (B, Q, C)).

        features: the encoder's list (strides 4..32), emptied as it is used, so each encoder
        map dies as soon as its up-block has read it (the stride-4 one would otherwise live
        through the colour decoder)."""
        x = features.pop()
        scales = []
        for block in self.layers:
            x = block(x, features.pop())
            scales.append(x)
        return x, self.color_decoder(scales, x.shape[0])


class DDColor(nn.Module):
    def __init__(self, variant="large"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown DDColor variant {variant!r}: use one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.memory_format = torch.channels_last  # see forward
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.encoder = Encoder(variant)
        self.decoder = Decoder(self.encoder.dims)
        self.refine_net = nn.Sequential(nn.Sequential(
            SpectralNormConv2d(NUM_QUERIES + 3, 2, 1, bias=True)))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"DDColor expects (B, 3, H, W) with H and W multiples of 32, got {tuple(x.shape)}")
        # channels_last: the convolutions run without layout conversions and the ConvNeXt blocks'
        # NHWC permutes are free (same-run A/B: bench/bench_folds.py, 1.02-1.22x tiny, 1.10x large).
        x = ((x - self.mean) / self.std).contiguous(memory_format=self.memory_format)
        h, color_embed = self.decoder(self.encoder(x))
        # The refine conv sees the per-query maps, then the normalised image: its query columns
        # are folded into the colour embeddings (M = W_q E), its image columns applied to x.
        refine = self.refine_net[0][0]
        weight = refine.weight[:, :, 0, 0]
        mix = torch.matmul(weight[:, :NUM_QUERIES], color_embed)  # (B, 2, C)
        shuf = self.decoder.last_shuf
        return fused_color_head(h, shuf.conv[0].weight, shuf.conv[0].bias, mix, x,
                                refine.weight[:, NUM_QUERIES:], refine.bias, shuf.scale)
