"""Checks on the colorize node's inputs, each failing with a message that names the problem and the fix.

Pure functions of tensors and numbers (no ComfyUI import), so they are unit-tested directly.
"""
import torch

MIN_SIDE = 8  # below this there is no context to predict colour from
# Full-size work is the Lab merge only (the network runs at the preset size); it keeps about this many
# float32 values per pixel alive at once (input, L, ab upsampled, Lab, RGB out, cv2 temporaries).
MERGE_FLOATS_PER_PIXEL = 16


class InputError(ValueError):
    """Bad input to a DDColor node; ComfyUI shows the message in its error dialog."""


def check_image(image):
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"DDColor Colorize: expected an IMAGE batch shaped (batch, height, width, channels), got {shape}. "
                         "Connect an IMAGE output (e.g. Load Image) to the image input.")
    batch, height, width, channels = image.shape
    if channels not in (3, 4):
        raise InputError(f"DDColor Colorize: the image has {channels} channel(s); DDColor needs RGB (3) or RGBA (4). "
                         "Convert it to RGB first (e.g. with an image-to-RGB node), or connect a regular IMAGE output.")
    if batch == 0:
        raise InputError("DDColor Colorize: the image batch is empty. Connect a node that outputs at least one image.")
    if min(height, width) < MIN_SIDE:
        raise InputError(f"DDColor Colorize: the image is {width}x{height} px; DDColor needs at least {MIN_SIDE}x{MIN_SIDE} px "
                         "to predict colour from. Use a larger image or upscale it first.")
    if not image.is_floating_point():
        raise InputError(f"DDColor Colorize: the image has dtype {image.dtype}; ComfyUI images are floats in [0, 1]. "
                         "Connect a regular IMAGE output.")


def check_mask(mask, image):
    """The optional mask must cover the image (same height and width; batch 1 or the image's)."""
    if mask is None:
        return
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3 or tuple(mask.shape[1:]) != tuple(image.shape[1:3]) or mask.shape[0] not in (1, image.shape[0]):
        raise InputError(f"DDColor Colorize: the mask is {tuple(mask.shape)} but the image batch is "
                         f"{tuple(image.shape[:3])} (batch, height, width); the mask must be the same height and width "
                         "with batch 1 or the same batch. Resize the mask or connect the mask of the same image.")


def model_size(preset, size, presets, custom_low, custom_high):
    """Model input size (before rounding) from the preset and the size input; 0 = the preset default."""
    if preset == "custom":
        if not custom_low <= size <= custom_high:
            raise InputError(f"DDColor Colorize: preset 'custom' needs a size between {custom_low} and {custom_high} px, "
                             f"got {size}. Set the size input, or choose the person or building preset.")
        return size
    if preset not in presets:
        raise InputError(f"DDColor Colorize: unknown preset {preset!r}; choose person, building or custom.")
    p = presets[preset]
    if size == 0:
        return p.default
    if not p.low <= size <= p.high:
        raise InputError(f"DDColor Colorize: size {size} is outside the {preset} preset's range {p.low}-{p.high} px. "
                         f"Set size to 0 (= {p.default}), a value in {p.low}-{p.high}, or choose preset 'custom'.")
    return size


def check_merge_memory(height, width, available_bytes):
    """The full-size Lab merge of one image must fit in the memory that is free."""
    need = height * width * MERGE_FLOATS_PER_PIXEL * 4
    if need > available_bytes:
        raise InputError(f"DDColor Colorize: a {width}x{height} image needs about {need / 2**30:.1f} GiB for the full-size "
                         f"colour merge but only {available_bytes / 2**30:.1f} GiB of memory is free. "
                         "Downscale the image (e.g. Upscale Image By < 1) or free memory, then run again.")
