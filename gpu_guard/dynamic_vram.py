"""ComfyUI's dynamic VRAM (comfy-aimdo): what of its memory is evictable, and who can evict it.

ComfyUI 0.38 turns DynamicVRAM on by default on NVIDIA (comfy-aimdo; off with --disable-dynamic-vram,
--highvram, --gpu-only, --novram, --cpu). Read for this module: comfy-aimdo 0.6.0 (PyPI wheel;
`comfy_aimdo/model_vbar.py`, `control.py`) and its sources at v0.4.10-8 (`src/model-vbar.c`,
`src/control.c`, `src/plat.h`); ComfyUI 0.38 `comfy/model_management.py` (02b2b38) and
`comfy/model_patcher.py` (08d0e51). Their accounting, as this module relies on it:

- A dynamic model (`ModelPatcherDynamic`) reserves a VBAR: address space, no memory. Its weights are
  faulted into 32 MiB pages when a layer runs; a resident page is device memory (cuMemCreate, so
  NVML counts it; torch's allocator stats do not). `ModelVBAR.loaded_size()` = resident pages x 32 MiB.
- `ModelPatcherDynamic.loaded_size()` = its VBAR's resident bytes + the small weights it loads as
  plain tensors, so `LoadedModel.model_loaded_memory()` of a listed dynamic model covers both.
- aimdo evicts unpinned resident pages, lowest-priority VBAR first, whenever *this process* allocates
  or faults and the device's free memory would fall under its headroom (256 MiB + --vram-headroom).
  While ComfyUI's worker is idle no page is pinned, so every resident page is evictable by ComfyUI
  itself for its next prompt: not pressure.
- A VBAR lives as long as its model object, which may outlive the model's entry in
  `current_loaded_models` (the execution cache keeps it). Its pages are then in no `LoadedModel`, but
  aimdo still evicts them on demand; `vbars_analyze(device)` counts every VBAR's resident pages of the
  device, which is what `ModelPatcher.get_free_memory` adds to free memory upstream. Pages outside the
  listed models are therefore evictable too - by this process only.
- aimdo never evicts for another process: its budget is checked only when this process allocates.
  Another guard must ask: ComfyUI's `unload_models` (POST /free) runs `free_memory`, whose
  `ModelPatcherDynamic.partially_unload` calls `ModelVBAR.free_memory` and drops the listed models'
  pages. Pages outside the listed models go only when their model object dies (free_memory=True, which
  also drops ComfyUI's execution cache) or when this process needs the room.

`vbars_analyze` walks aimdo's list of VBARs, which ComfyUI's worker changes without a lock: it is read
on the worker thread only (VbarResidency), never from the poll thread.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

# aimdo's page: residency, eviction and loaded_size() move in these steps (VBAR_PAGE_SIZE).
AIMDO_PAGE_BYTES = 32 << 20


@dataclass(frozen=True)
class ModelResidency:
    """One of ComfyUI's loaded models on the guarded device."""
    loaded_bytes: int  # LoadedModel.model_loaded_memory()
    vbar_bytes: int = 0  # of which resident in its VBAR (dynamic models; 0 for the others)


@dataclass(frozen=True)
class Evictable:
    """ComfyUI's evictable memory on the device while its worker is idle."""
    listed_bytes: int  # the loaded models: what unload_models releases
    outside_bytes: int = 0  # resident VBAR pages of no listed model: evicted only for this process's needs

    @property
    def total_bytes(self) -> int:
        return self.listed_bytes + self.outside_bytes


def evictable(models: Iterable[ModelResidency], vbars_resident_bytes: Optional[int]) -> Evictable:
    """`vbars_resident_bytes`: aimdo's resident VBAR bytes of the device (vbars_analyze), None when
    dynamic VRAM is off or not measured yet. Listed dynamic models are not counted twice."""
    listed = vbar_listed = 0
    for model in models:
        listed += max(0, model.loaded_bytes)
        vbar_listed += max(0, model.vbar_bytes)
    outside = 0 if vbars_resident_bytes is None else max(0, vbars_resident_bytes - vbar_listed)
    return Evictable(listed, outside)


class VbarResidency:
    """aimdo's resident VBAR bytes, measured by ComfyUI's worker thread (`measure()` in the queue hook,
    between prompts) and read by any thread (`bytes`). None until measured or while dynamic VRAM is off."""

    def __init__(self, analyze: Callable[[], Optional[int]]):
        self._analyze = analyze
        self._lock = threading.Lock()
        self._bytes: Optional[int] = None
        self.measured = 0

    def measure(self) -> None:
        value = self._analyze()
        with self._lock:
            self._bytes = None if value is None else max(0, int(value))
            self.measured += 1

    @property
    def bytes(self) -> Optional[int]:
        with self._lock:
            return self._bytes
