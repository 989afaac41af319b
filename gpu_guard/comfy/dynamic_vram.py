"""ComfyUI's side of the dynamic-VRAM measure (gpu_guard.dynamic_vram): its loaded models and aimdo.

ComfyUI 0.3.75 has neither `comfy.memory_management` nor comfy-aimdo: dynamic VRAM is then inactive
and the measure is the loaded models alone, as before.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Optional

from ..dynamic_vram import Evictable, ModelResidency, VbarResidency, evictable

_log = logging.getLogger("gpu_guard.comfy")


class Aimdo:
    """ComfyUI's switch (`comfy.memory_management.aimdo_enabled`) and aimdo's `model_vbar` module."""

    def __init__(self, memory_management=None, model_vbar=None):
        self.memory_management = memory_management
        self.model_vbar = model_vbar

    @classmethod
    def from_comfy(cls) -> "Aimdo":
        try:
            import comfy.memory_management as memory_management
            import comfy_aimdo.model_vbar as model_vbar
        except Exception:  # noqa: BLE001 - ComfyUI before 0.38, or no aimdo wheel: no dynamic VRAM
            return cls()
        return cls(memory_management, model_vbar)

    def active(self) -> bool:
        return (bool(getattr(self.memory_management, "aimdo_enabled", False))
                and getattr(self.model_vbar, "lib", None) is not None)

    def vbars_resident(self, device_index: Optional[int]) -> Optional[int]:
        """Resident VBAR bytes of the device; call on ComfyUI's worker thread only (see VbarResidency)."""
        if not self.active():
            return None
        return int(self.model_vbar.vbars_analyze(device_index))


def residency_of(loaded, wanted: str) -> Optional[ModelResidency]:
    """A LoadedModel on the device named `wanted`, or None. Its model is a weak reference: read once."""
    if str(getattr(loaded, "device", None)) != wanted:
        return None
    patcher = loaded.model
    if patcher is None:
        return None
    vbar_bytes = 0
    is_dynamic = getattr(patcher, "is_dynamic", None)
    if callable(is_dynamic) and is_dynamic():
        vbar = (getattr(getattr(patcher, "model", None), "dynamic_vbars", None) or {}).get(loaded.device)
        vbar_bytes = int(vbar.loaded_size()) if vbar is not None else 0
    # LoadedModel.model_loaded_memory() is patcher.loaded_size(); called on the patcher read above
    return ModelResidency(int(patcher.loaded_size()), vbar_bytes)


def evictable_on(loaded_models: Iterable, device, vbars_resident: Optional[int] = None) -> Evictable:
    if device is None:
        return Evictable(0)
    wanted = str(device)
    models = [r for r in (residency_of(m, wanted) for m in list(loaded_models)) if r is not None]
    return evictable(models, vbars_resident)


class IdleModels:
    """The guard's idle-models source: ComfyUI's evictable memory on its compute device, with aimdo's
    VBAR pages outside the listed models once the worker has measured them. `last` keeps the split
    (the neighbours registry publishes only what unload_models releases)."""

    def __init__(self, loaded_models: Callable[[], Iterable], device, aimdo: Optional[Aimdo] = None):
        self._loaded_models = loaded_models
        self._device = device
        self.aimdo = aimdo or Aimdo()
        index = getattr(device, "index", None)
        self.residency = VbarResidency(lambda: self.aimdo.vbars_resident(index))
        self.last = Evictable(0)

    def measure_on_worker(self) -> None:
        """Called by ComfyUI's worker thread as it enters `get` (between prompts)."""
        self.residency.measure()

    def __call__(self) -> int:
        self.last = evictable_on(self._loaded_models(), self._device, self.residency.bytes)
        return self.last.total_bytes

    def status(self) -> dict:
        last = self.last
        return {"active": self.aimdo.active(), "vbar_resident_bytes": self.residency.bytes,
                "loaded_models_bytes": last.listed_bytes, "outside_loaded_models_bytes": last.outside_bytes}
