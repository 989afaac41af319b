"""The colourisation pipeline on ComfyUI's IMAGE layout (B, H, W, C) float in [0, 1].

Official steps: L of the original; the image resized to the model size, reduced to its L and
turned back into gray RGB for the model; the predicted ab upsampled (nearest) to the original
size and merged with the original L; Lab -> RGB. Optional extras are in ColorizeOptions.
Two implementations of the steps around the model: numpy/OpenCV on the CPU (here) and torch on
the model's device (torch_pipeline.py), with the same numbers.
"""
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .lab import gray_rgb, lab_to_rgb, resize_bilinear, rgb_to_lab
from .presets import SIZE_MULTIPLE, round_size
from .torch_pipeline import AB_LIMITS, colorize_tensors, upsample_ab

AB_UPSAMPLE_MODES = ("nearest", "bilinear")
BACKENDS = ("torch", "opencv")


@dataclass
class ColorizeOptions:
    """Options beyond the official pipeline; the defaults reproduce it exactly.

    ab_upsample: "nearest" (official) or "bilinear" (smoother colour edges on big images).
    clamp_ab: clamp the predicted a/b to [-128, 127].
    keep_aspect: run the model on an input with the image's aspect ratio (long side = size,
        short side rounded to a multiple of 32) instead of squashing it to size x size.
    strength: 1 = predicted colour, 0 = the input's own chroma (gray for a black-and-white
        photo); values between blend the two linearly in ab.
    """
    ab_upsample: str = "nearest"
    clamp_ab: bool = False
    keep_aspect: bool = False
    strength: float = 1.0

    def __post_init__(self):
        if self.ab_upsample not in AB_UPSAMPLE_MODES:
            raise ValueError(f"ab_upsample must be one of {AB_UPSAMPLE_MODES}, got {self.ab_upsample!r}")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {self.strength}")


def model_input_size(height, width, size, keep_aspect):
    """(h, w) of the model input for an image of height x width and a model size (multiple of 32)."""
    if not keep_aspect or height == width:
        return size, size
    short = min(height, width) * size / max(height, width)
    short = max(SIZE_MULTIPLE, int(short / SIZE_MULTIPLE + 0.5) * SIZE_MULTIPLE)
    return (size, short) if height > width else (short, size)


def colorize(model, rgb, size, options=None, backend=None):
    """Colourise ``rgb`` (B, H, W, 3 or 4) with ``model`` at model size ``size``.

    Returns a tensor of the same shape, dtype and device; an alpha channel is passed through.
    backend: "torch" runs the Lab conversions, resizes and merge in torch on the model's
    device; "opencv" runs them with OpenCV on the CPU; None (default) picks torch for a model
    on a GPU and OpenCV for a model on the CPU, where OpenCV measures faster
    (bench/bench_pipeline.py).
    """
    options = options or ColorizeOptions()
    _check_image(rgb)
    size, note = round_size(size)
    if note:
        warnings.warn(note, stacklevel=2)
    device = _model_device(model)
    backend = backend or ("opencv" if device.type == "cpu" else "torch")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    height, width = rgb.shape[1:3]
    in_h, in_w = model_input_size(height, width, size, options.keep_aspect)
    with torch.inference_mode():
        if backend == "torch":
            colored = colorize_tensors(model, rgb[..., :3], in_h, in_w, options, device)
        else:
            colored = _colorize_arrays(
                model, rgb[..., :3].detach().to("cpu", torch.float32).numpy(), in_h, in_w, options)
    # Made outside inference mode so callers may modify the result in place.
    if isinstance(colored, np.ndarray):
        colored = torch.from_numpy(colored)
    result = colored.to(device=rgb.device, dtype=rgb.dtype)
    if result.is_inference():
        result = result.clone()
    if rgb.shape[-1] == 4:
        result = torch.cat([result, rgb[..., 3:]], dim=-1)
    return result


def _model_device(model):
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _colorize_arrays(model, color, in_h, in_w, options):
    """The pipeline on (B, H, W, 3) float32 RGB numpy; returns the same layout."""
    height, width = color.shape[1:3]
    labs = [rgb_to_lab(image) for image in color]
    ab = torch.from_numpy(np.stack([lab[..., 1:] for lab in labs])).permute(0, 3, 1, 2)
    if options.strength > 0:  # strength 0 keeps the input's chroma: no forward needed
        predicted = predict_ab(model, color, in_h, in_w)
        predicted = upsample_ab(predicted, height, width, options.ab_upsample)
        if options.clamp_ab:
            predicted = predicted.clamp(*AB_LIMITS)
        strength = float(options.strength)
        ab = predicted if strength == 1.0 else torch.lerp(ab, predicted, strength)
    for lab, image_ab in zip(labs, ab.permute(0, 2, 3, 1).numpy()):
        lab[..., 1:] = image_ab
    return np.stack([lab_to_rgb(lab) for lab in labs])


def gray_model_input(color, in_h, in_w):
    """The model input (B, 3, in_h, in_w) float32 for RGB images (B, H, W, 3) float32 numpy."""
    gray = [gray_rgb(rgb_to_lab(resize_bilinear(image, in_h, in_w))[..., 0]) for image in color]
    return torch.from_numpy(np.stack(gray)).permute(0, 3, 1, 2)


def predict_ab(model, color, in_h, in_w):
    """Model ab (B, 2, in_h, in_w) float32 on the CPU for RGB images (B, H, W, 3) float32 numpy."""
    batch = gray_model_input(color, in_h, in_w)
    param = next(model.parameters())
    ab = model(batch.to(device=param.device, dtype=param.dtype))
    return ab.to("cpu", torch.float32)


def _check_image(rgb):
    if not isinstance(rgb, torch.Tensor):
        raise TypeError(f"colorize expects a torch tensor (B, H, W, C), got {type(rgb).__name__}")
    if rgb.ndim != 4 or rgb.shape[-1] not in (3, 4):
        raise ValueError(f"colorize expects an image batch (B, H, W, 3) or (B, H, W, 4) "
                         f"(ComfyUI IMAGE layout), got shape {tuple(rgb.shape)}")
    if not rgb.is_floating_point():
        raise ValueError(f"colorize expects float values in [0, 1], got dtype {rgb.dtype}; "
                         f"divide 8-bit images by 255")
    if 0 in rgb.shape[:3]:
        raise ValueError(f"colorize got an empty image batch of shape {tuple(rgb.shape)}")
