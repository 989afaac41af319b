"""ConvNeXt encoder (T and L) returning its four normalised stage features explicitly.

The official DDColor reads these features through forward hooks on ``norm0..norm3`` and keeps
them alive on the module after the forward. Here they are plain return values, so nothing
outlives a call. The final ``norm`` (used only by the removed classification head) is kept so
checkpoints load strictly, but it is not computed.
"""
import torch
import torch.nn as nn

CONVNEXT_CONFIGS = {
    "tiny": {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768)},
    "large": {"depths": (3, 3, 27, 3), "dims": (192, 384, 768, 1536)},
}

CONVNEXT_EPS = 1e-6
# Hidden-layer values computed at once in a block's MLP: 8 Mi = 32 MiB in fp32 (one band at
# S=512 for ConvNeXt-T's first stage; several at larger sizes).
MLP_BAND_ELEMENTS = 8 * 2 ** 20


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dim 1 of an NCHW tensor, written out as the official model does."""

    def __init__(self, channels, eps=CONVNEXT_EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        # gamma first: it is the block's own parameter, listed before its sub-modules.
        self.gamma = nn.Parameter(torch.ones(dim))
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=CONVNEXT_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()  # exact erf GELU, not the tanh approximation
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1).contiguous()  # (B, H, W, C)
        pixels = y.view(-1, y.shape[-1])
        # The 4x wider hidden layer is computed for a band of pixels at a time (in place of the
        # band), so it never exists for the whole stride-4 map: each pixel is independent here.
        step = max(1, MLP_BAND_ELEMENTS // self.pwconv1.out_features)
        for start in range(0, pixels.shape[0], step):
            band = pixels[start:start + step]
            band.copy_(self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(band)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, depths, dims, in_channels=3):
        super().__init__()
        self.dims = tuple(dims)
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(
            nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4),
            ChannelsFirstLayerNorm(dims[0]),
        ))
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                ChannelsFirstLayerNorm(dims[i]),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2),
            ))
        self.stages = nn.ModuleList(
            nn.Sequential(*[ConvNeXtBlock(dims[i]) for _ in range(depths[i])]) for i in range(4)
        )
        for i in range(4):
            self.add_module(f"norm{i}", ChannelsFirstLayerNorm(dims[i]))
        self.norm = nn.LayerNorm(dims[-1], eps=CONVNEXT_EPS)  # head norm: loaded, never run

    def forward(self, x):
        """Return the four stage outputs after their norm{i} layer (strides 4, 8, 16, 32)."""
        features = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            # The normalised copy is a side output; the next stage continues from x.
            features.append(getattr(self, f"norm{i}")(x))
        return features


class Encoder(nn.Module):
    """Wrapper whose only child is ``arch``, matching the ``encoder.arch.*`` key names."""

    def __init__(self, variant):
        super().__init__()
        self.arch = ConvNeXt(**CONVNEXT_CONFIGS[variant])

    @property
    def dims(self):
        return self.arch.dims

    def forward(self, x):
        return self.arch(x)
