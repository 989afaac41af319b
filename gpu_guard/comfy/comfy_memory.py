"""What this ComfyUI holds in memory, read from its model management: loaded models by device.

The guard asks between prompts, so none of the loaded models is in use and ComfyUI would evict any
of them for the next prompt (`currently_used` stays set after a prompt, so it is not read).
"""
from __future__ import annotations

from .dynamic_vram import evictable_on


def comfy_loaded_models():
    """ComfyUI's own loaded models (empty when its model management cannot be imported)."""
    try:
        import comfy.model_management as model_management
    except ImportError:
        return []
    return model_management.current_loaded_models


def loaded_models_bytes(loaded_models, device_name) -> int:
    """Bytes held on the device named `device_name` ("cuda:0", "cpu") by ComfyUI's loaded models. Each
    LoadedModel's weak reference is read once: a model collected meanwhile counts 0, it does not fail
    the whole measure. (With dynamic VRAM the adapter also counts aimdo's pages: dynamic_vram.IdleModels.)"""
    return evictable_on(loaded_models, device_name).listed_bytes


def measured_device(probe, compute_device):
    """The device name whose models the probe's reading contains, or None when it contains none of
    them: a probe of system RAM contains the models only when ComfyUI computes on the CPU."""
    if getattr(probe, "measures_ram", False):
        return "cpu" if compute_device.type == "cpu" else None
    return compute_device.name
