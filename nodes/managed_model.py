"""A loaded DDColor network under ComfyUI's model management (the DDCOLOR_MODEL value).

The network sits in a ModelPatcher, like ComfyUI's own CLIP-vision and VAE models, so that
`load_models_gpu` moves it to the compute device (freeing other models first if memory is short),
`free_memory` / `unload_all_models` (POST /free) move it back to the offload device, and it shows in
`model_management.current_loaded_models` like any other model.
"""
import os
import weakref

import torch

import comfy.model_management as mm
import comfy.model_patcher

from .placement import dtype_name

# Every live DDColorModel, for the status route (weak: it never keeps a model alive).
_live = weakref.WeakSet()


class PatchableDDColor(torch.nn.Module):
    """Holds the network so that the attributes ModelPatcher sets on its model (device, memory
    counters) land on this holder and never on the network itself."""

    def __init__(self, net, dtype):
        super().__init__()
        self.net = net
        self._dtype = dtype

    def get_dtype(self):  # read by ModelPatcher.model_dtype()
        return self._dtype


class DDColorModel:
    def __init__(self, net, variant, dtype, device, offload, path):
        self.variant = variant
        self.dtype = dtype
        self.path = path
        self.name = os.path.basename(path)
        self.patcher = comfy.model_patcher.ModelPatcher(PatchableDDColor(net, dtype), load_device=device,
                                                        offload_device=offload)
        _live.add(self)

    def ready(self, memory_required):
        """Load onto the compute device through ComfyUI (full load: the network has no
        ComfyUI cast layers, so it cannot run split across devices); returns the network."""
        mm.load_models_gpu([self.patcher], memory_required=memory_required, force_full_load=True)
        return self.patcher.model.net

    def describe(self):
        return {"name": self.name, "variant": self.variant, "dtype": dtype_name(self.dtype),
                "load_device": str(self.patcher.load_device), "current_device": str(self.patcher.current_loaded_device())}


def status():
    """Loaded = in ComfyUI's list of models on a device; alive = still referenced (e.g. by the node cache)."""
    loaded = [m for m in mm.loaded_models() if isinstance(getattr(m, "model", None), PatchableDDColor)]
    alive = list(_live)
    return {
        "loaded": [m.describe() for m in alive if m.patcher in loaded],
        "loaded_count": len(loaded),
        "alive_count": len(alive),
    }
