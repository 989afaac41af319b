"""DDColorColorize: IMAGE batch in, colourised IMAGE batch (and the MASK passed through) out."""
import logging

import psutil
import torch

import comfy.model_management as mm
import comfy.utils

from ..ddcolor_model import PRESETS, ColorizeOptions, colorize, estimate_peak_bytes, round_size
from ..ddcolor_model.memory import images_per_chunk
from .image_checks import check_image, check_mask, check_merge_memory, model_size
from .specs import COLORIZE_INPUTS, COLORIZE_OUTPUTS, CUSTOM_SIZE_HIGH, CUSTOM_SIZE_LOW

_log = logging.getLogger(__name__)
CPU_IMAGES_PER_CHUNK = 1


def resolve_size(preset, size):
    """(model input size rounded to /32, note or None); raises InputError for a size out of range."""
    return round_size(model_size(preset, size, PRESETS, CUSTOM_SIZE_LOW, CUSTOM_SIZE_HIGH))


def passthrough_mask(mask, image):
    """The MASK output: the mask input as given, else the image's own alpha as a ComfyUI mask
    (1 - alpha, like Load Image), else an all-zero mask of the image's size."""
    if mask is not None:
        return mask.unsqueeze(0) if mask.ndim == 2 else mask
    if image.shape[-1] == 4:
        return 1.0 - image[..., 3]
    return torch.zeros(image.shape[:3], dtype=torch.float32, device=image.device)


def chunk_size(net, model, side, shape):
    """Images per forward: one on the CPU (a batch is not faster there: bench/bench_model.py),
    else as many as the device's free memory holds by the estimate (at least one)."""
    device = next(net.parameters()).device
    if device.type == "cpu":
        return CPU_IMAGES_PER_CHUNK
    batch, height, width, _ = shape
    return images_per_chunk(model.variant, side, height, width, batch, mm.get_free_memory(device), model.dtype)


class DDColorColorize:
    CATEGORY = "image/color"
    DESCRIPTION = "Colourise a batch of images with DDColor. The luminance (Lab L) of each image is kept exactly."
    RETURN_TYPES = tuple(t for t, _ in COLORIZE_OUTPUTS)
    RETURN_NAMES = tuple(n for _, n in COLORIZE_OUTPUTS)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return COLORIZE_INPUTS

    @classmethod
    def VRAM_ESTIMATE(cls, inputs, prompt):
        """Peak device bytes of this node in a queued prompt, for the VRAM guard's fast lane."""
        from .estimator import estimate_colorize_bytes  # late: the estimator imports this module

        return estimate_colorize_bytes(inputs, prompt)

    def run(self, model, image, preset, size, keep_aspect, ab_upsample, clamp_ab, strength, mask=None):
        check_image(image)
        check_mask(mask, image)
        side, note = resolve_size(preset, size)
        if note:
            _log.info("DDColor Colorize: %s", note)
        batch, height, width, _ = image.shape
        check_merge_memory(height, width, psutil.virtual_memory().available)
        options = ColorizeOptions(ab_upsample=ab_upsample, clamp_ab=clamp_ab, keep_aspect=keep_aspect, strength=strength)
        net = model.ready(estimate_peak_bytes(model.variant, side, 1, model.dtype))
        chunk = chunk_size(net, model, side, image.shape)

        progress = comfy.utils.ProgressBar(batch)
        out = []
        for start in range(0, batch, chunk):
            mm.throw_exception_if_processing_interrupted()  # honour Cancel between chunks
            stop = min(batch, start + chunk)
            out.append(colorize(net, image[start:stop], side, options))
            progress.update(stop - start)  # the bar counts images
        return (torch.cat(out, dim=0), passthrough_mask(mask, image))
