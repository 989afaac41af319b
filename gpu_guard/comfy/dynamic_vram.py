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


def residency_of(loaded, device_name: str) -> Optional[ModelResidency]:
    """A LoadedModel on the device named `device_name` ("cuda:0", "cpu"), or None. Its model is a weak
    reference: read once (a model collected meanwhile counts nothing, it does not fail the measure)."""
    if str(getattr(loaded, "device", None)) != device_name:
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


def evictable_on(loaded_models: Iterable, device_name: Optional[str],
                 vbars_resident: Optional[int] = None) -> Evictable:
    """ComfyUI's loaded models on the device named `device_name` (None: a probe that sees none of
    them), plus aimdo's pages outside them. The list is copied: the worker may load or unload meanwhile."""
    if device_name is None:
        return Evictable(0)
    models = [r for r in (residency_of(m, device_name) for m in list(loaded_models)) if r is not None]
    return evictable(models, vbars_resident)


class IdleModels:
    """The guard's idle-models source (`__call__`: the loaded models, what unload_models releases) and,
    with dynamic VRAM on, its reclaimable source "dynamic_vram" (`outside`: aimdo's resident pages of
    models no longer listed, once the worker has measured them; ComfyUI evicts them by itself for its
    next prompt, but unload_models does not release them)."""

    KIND = "dynamic_vram"

    def __init__(self, loaded_models: Callable[[], Iterable], device_name: Optional[str],
                 device_index: Optional[int] = None, aimdo: Optional[Aimdo] = None):
        self._loaded_models = loaded_models
        self._device_name = device_name
        self.aimdo = aimdo or Aimdo.from_comfy()
        self.residency = VbarResidency(lambda: self.aimdo.vbars_resident(device_index))
        self.last = Evictable(0)

    def measure_on_worker(self) -> None:
        """Called by ComfyUI's worker thread as it enters `get` (between prompts)."""
        self.residency.measure()

    def __call__(self) -> int:
        self.last = evictable_on(self._loaded_models(), self._device_name, self.residency.bytes)
        return self.last.listed_bytes

    def outside(self, reading=None) -> int:
        """Asked by the guard right after __call__ for the same reading."""
        return self.last.outside_bytes

    def attach(self, guard) -> None:
        guard.set_idle_models_source(self)
        if self.aimdo.active():
            guard.set_reclaimable_source(self.KIND, self.outside)

    def status(self) -> dict:
        last = self.last
        return {"active": self.aimdo.active(), "vbar_resident_bytes": self.residency.bytes,
                "loaded_models_bytes": last.listed_bytes, "outside_loaded_models_bytes": last.outside_bytes}
