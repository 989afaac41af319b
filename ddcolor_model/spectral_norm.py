"""Conv2d with eval-mode spectral normalisation that loads the classic state-dict layout.

Checkpoints made with ``torch.nn.utils.spectral_norm`` store ``weight_orig``, ``weight_u`` and
``weight_v``. At inference the official model divides ``weight_orig`` by
``sigma = u . (W v)`` using the stored vectors (no power iteration). We compute that normalised
weight once, whenever the stored tensors are loaded, instead of on every forward.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class SpectralNormConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, bias, padding=0):
        super().__init__()
        # Registration order (bias, weight_orig, then the u/v buffers) matches the official layout.
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_orig = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        fan_in = in_channels * kernel_size * kernel_size
        self.register_buffer("weight_u", torch.full((out_channels,), out_channels ** -0.5))
        self.register_buffer("weight_v", torch.full((fan_in,), fan_in ** -0.5))
        # Derived from the three tensors above; not saved, but moved and cast with the module.
        self.register_buffer("weight", torch.empty(0), persistent=False)
        self.padding = padding
        nn.init.kaiming_normal_(self.weight_orig)
        self.refresh_weight()
        self.register_load_state_dict_post_hook(_refresh_after_load)

    @torch.no_grad()
    def refresh_weight(self):
        """Recompute the normalised weight from weight_orig, weight_u and weight_v."""
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
        self.weight = (w / sigma).detach().clone()

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)

    def extra_repr(self):
        out_c, in_c, k, _ = self.weight_orig.shape
        return f"{in_c}, {out_c}, kernel_size={k}, padding={self.padding}, bias={self.bias is not None}"


def _refresh_after_load(module, incompatible_keys):
    module.refresh_weight()


def refresh_spectral_weights(model: nn.Module):
    """Recompute every spectral-norm weight (after weights were changed in place)."""
    for m in model.modules():
        if isinstance(m, SpectralNormConv2d):
            m.refresh_weight()
