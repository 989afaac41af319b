"""VRAM-cost estimate of a queued DDColorColorize node, for the VRAM guard's admission policy
(DDColorColorize.VRAM_ESTIMATE, the guard's estimator contract: see gpu_guard/estimators.py).

Called with the node's inputs from the prompt before anything runs, so it only uses what the prompt
says: size and precision from the widgets, the variant from a checkpoint loaded before (else the
large one, an upper bound), and the batch when the image comes straight from Load Image (1).
An unknown batch gives None: the guard never fast-lanes a prompt of unknown cost.
"""
from ..ddcolor_model import estimate_peak_bytes
from . import variant_cache
from .colorize_node import resolve_size
from .model_folder import checkpoint_path
from .placement import dtype_for, load_device

SINGLE_IMAGE_SOURCES = {"LoadImage", "LoadImageMask"}


def _linked_node(prompt, value):
    if isinstance(value, list) and len(value) == 2:
        return prompt.get(str(value[0]))
    return None


def estimate_colorize_bytes(node_inputs, prompt):
    source = _linked_node(prompt, node_inputs.get("image"))
    loader = _linked_node(prompt, node_inputs.get("model"))
    if source is None or source.get("class_type") not in SINGLE_IMAGE_SOURCES:
        return None
    if loader is None or loader.get("class_type") != "DDColorModelLoader":
        return None
    try:
        side, _ = resolve_size(node_inputs.get("preset", "person"), int(node_inputs.get("size", 0)))
        inputs = loader.get("inputs", {})
        dtype = dtype_for(inputs.get("precision", "auto"), load_device(inputs.get("device", "auto")))
    except (ValueError, TypeError):
        return None  # the prompt itself is bad; validation reports it
    try:
        variant = variant_cache.lookup(checkpoint_path(inputs.get("ckpt_name", ""))) or "large"
    except (FileNotFoundError, TypeError):
        variant = "large"
    return int(estimate_peak_bytes(variant, side, 1, dtype))
