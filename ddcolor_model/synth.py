"""Synthetic DDColor checkpoints for demos and tests without the official weights.

The weights are random (deterministic for a seed) and drawn from this package's own model
parameter list, so the output shows the pipeline working but the colours mean nothing.
Files carry a marker; load_model sets ``model.synthetic`` and the CLI labels every output.
"""
import torch

from .checkpoint import SYNTHETIC_MARKER
from .ddcolor import IMAGENET_MEAN, IMAGENET_STD, DDColor

SYNTHETIC_NOTE = ("SYNTHETIC DDColor weights (random, made by `python -m ddcolor_model synth`); "
                  "not a trained model: the colours are meaningless")
# The random network predicts nearly gray ab; scaling its last colour-embedding layer makes the
# demo output visibly colourful. At 150 the sample photo gets ab std ~9 around a mean chroma of
# ~27 with most pixels still inside the RGB gamut (at 300 over 90% would be clipped).
LAST_COLOR_LAYER = "decoder.color_decoder.color_embed.layers.2."
COLOR_GAIN = 150.0
POWER_ITERATIONS = 20


def make_synthetic_state_dict(variant, seed=0):
    """A full, strict-loadable state dict for ``variant``; same values for the same seed."""
    with torch.device("meta"):  # shapes only; skips the costly random init
        template = DDColor(variant).state_dict()
    state = {}
    for index, (key, like) in enumerate(template.items()):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
        state[key] = _draw(key, like, gen)
    for key in list(state):
        if key.endswith(".weight_orig"):
            stem = key[: -len("weight_orig")]
            state[stem + "weight_u"], state[stem + "weight_v"] = _top_singular_vectors(state[key])
        if key.startswith(LAST_COLOR_LAYER):
            state[key] = state[key] * COLOR_GAIN
    return state


def save_synthetic_checkpoint(path, variant, seed=0):
    torch.save({"params": make_synthetic_state_dict(variant, seed), SYNTHETIC_MARKER: SYNTHETIC_NOTE},
               path)


def _draw(key, like, gen):
    name = key.rsplit(".", 1)[-1]
    if key in ("mean", "std"):
        return torch.tensor(IMAGENET_MEAN if key == "mean" else IMAGENET_STD).view(like.shape)
    if not like.is_floating_point():
        return torch.zeros(like.shape, dtype=like.dtype)  # num_batches_tracked
    if name == "running_var":
        return 1.0 + 0.5 * _uniform(like.shape, gen)
    if name == "running_mean":
        return 0.05 * _normal(like.shape, gen)
    if name == "gamma":  # ConvNeXt layer scale
        return 0.2 + 0.3 * _uniform(like.shape, gen)
    if like.ndim >= 2:
        if key.endswith("embed.weight") or key.endswith("query_feat.weight"):
            return _normal(like.shape, gen)
        fan_in = like[0].numel()
        return _normal(like.shape, gen) / fan_in ** 0.5
    if name == "weight":  # 1-D weights belong to norm layers
        return 1.0 + 0.05 * _normal(like.shape, gen)
    return 0.01 * _normal(like.shape, gen)  # biases; u/v are replaced later


def _normal(shape, gen):
    # Sample in float64 and round: float32 sampling kernels differ between CPU types.
    return torch.randn(shape, generator=gen, dtype=torch.float64).float()


def _uniform(shape, gen):
    return torch.rand(shape, generator=gen, dtype=torch.float64).float()


def _top_singular_vectors(weight):
    """(u, v) of the largest singular value of weight reshaped to (out, -1), by power iteration."""
    matrix = weight.double().reshape(weight.shape[0], -1)
    v = torch.ones(matrix.shape[1], dtype=torch.float64) / matrix.shape[1] ** 0.5
    for _ in range(POWER_ITERATIONS):
        u = torch.nn.functional.normalize(matrix @ v, dim=0)
        v = torch.nn.functional.normalize(matrix.t() @ u, dim=0)
    return u.float(), v.float()
