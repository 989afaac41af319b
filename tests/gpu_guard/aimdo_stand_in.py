"""A stand-in for comfy-aimdo's accounting on one device, and for ComfyUI 0.38's dynamic model patcher.

It follows what the guard relies on (comfy-aimdo 0.6.0 / src/model-vbar.c, ComfyUI 0.38
model_patcher.py; see gpu_guard/dynamic_vram.py): 32 MiB pages; a VBAR's resident pages count in the
process's usage and in the device's used memory (NVML), not in torch's allocator; an allocation or a
fault of this process that would leave less than the headroom free evicts unpinned pages, lowest-
priority VBAR first and from its top page down (the watermark falls with it); `free_memory(n)` evicts
from the VBAR's top down to its watermark limit; `vbars_analyze` walks the list of VBARs, which the
stand-in allows on the worker thread only (a walk from another thread is recorded as a violation).
"""
from __future__ import annotations

import threading
import types
import weakref

PAGE = 32 << 20
HEADROOM = 256 << 20  # aimdo's VRAM_HEADROOM


def pages(size: int) -> int:
    return -(-int(size) // PAGE)


class Device:
    """torch.device-like: ComfyUI compares devices, the guard prints them."""

    def __init__(self, index=0):
        self.type, self.index = "cuda", index

    def __str__(self):
        return f"cuda:{self.index}"


class AimdoDevice:
    def __init__(self, total_bytes, foreign_bytes=0, headroom=HEADROOM):
        self.total_bytes, self.foreign_bytes, self.headroom = total_bytes, foreign_bytes, headroom
        self.vbars = []  # lowest priority first
        self.usage = 0  # this process through aimdo: resident pages + plain allocations
        self.worker = None  # the one thread that may walk the VBAR list
        self.violations = []

    # what NVML sees
    def used_bytes(self):
        return self.foreign_bytes + self.usage

    def deficit(self, size):
        return self.headroom - (self.total_bytes - self.used_bytes() - size)

    def evict(self, size, keep=None):
        """vbars_free: unpinned pages, lowest priority first, top page down; returns pages still needed."""
        needed = pages(size)
        for vbar in list(self.vbars):
            if vbar is keep:
                continue
            while needed and vbar.watermark > vbar.watermark_limit:
                vbar.watermark -= 1
                if vbar.drop(vbar.watermark):
                    needed -= 1
        return needed

    def allocate(self, size):
        """A plain allocation of this process (torch's allocator goes through aimdo's hooks)."""
        if self.deficit(size) > 0:
            self.evict(self.deficit(size))
        if self.deficit(size) > self.headroom:
            raise MemoryError("CUDA out of memory (stand-in)")
        self.usage += size

    def release(self, size):
        self.usage -= size

    def vbars_analyze(self, device=None):
        if threading.current_thread() is not self.worker:
            self.violations.append(threading.current_thread().name)
        return sum(len(v.resident) for v in self.vbars) * PAGE

    def modules(self):
        """What `comfy.memory_management` and `comfy_aimdo.model_vbar` look like to the adapter."""
        memory_management = types.SimpleNamespace(aimdo_enabled=True)
        model_vbar = types.SimpleNamespace(lib=object(), vbars_analyze=self.vbars_analyze)
        return memory_management, model_vbar


class ModelVBAR:
    def __init__(self, device: AimdoDevice, size):
        self.device = device
        self.nr_pages = pages(size)
        self.resident, self.pins = set(), {}
        self.watermark, self.watermark_limit = self.nr_pages, 0
        device.vbars.append(self)  # a new VBAR has the highest priority

    def prioritize(self):
        self.device.vbars.remove(self)
        self.device.vbars.append(self)
        self.watermark = self.nr_pages

    def fault(self, first, count):
        """Make pages resident and pin them; False (an OOM fault: the layer streams the weight) when
        the budget cannot be met."""
        for page in range(first, first + count):
            if page >= self.watermark:
                return False
            if page in self.resident:
                continue
            if self.device.deficit(PAGE) > 0:
                self.device.evict(self.device.deficit(PAGE), keep=self)
            if self.device.deficit(PAGE) > 0:
                return False
            self.resident.add(page)
            self.device.usage += PAGE
        for page in range(first, first + count):
            self.pins[page] = self.pins.get(page, 0) + 1
        return True

    def unpin(self, first, count):
        for page in range(first, first + count):
            if self.pins.get(page):
                self.pins[page] -= 1

    def drop(self, page):
        if page in self.resident and not self.pins.get(page):
            self.resident.discard(page)
            self.device.usage -= PAGE
            return True
        return False

    def loaded_size(self):
        return len(self.resident) * PAGE

    def free_memory(self, size):
        to_free, freed = pages(min(size, self.nr_pages * PAGE)), 0
        while to_free and self.watermark > self.watermark_limit:
            self.watermark -= 1
            if self.drop(self.watermark):
                to_free -= 1
                freed += 1
        return freed * PAGE

    def close(self):
        for page in list(self.resident):
            self.pins.pop(page, None)
            self.drop(page)
        self.device.vbars.remove(self)


class DynamicPatcher:
    """ModelPatcherDynamic's accounting: weights in a VBAR, small ones loaded as plain tensors."""

    def __init__(self, aimdo: AimdoDevice, device: Device, weights_bytes, small_bytes=0):
        self.load_device = device
        self.weights_pages = pages(weights_bytes)
        self.small_bytes = small_bytes
        self.model = types.SimpleNamespace(dynamic_vbars={device: ModelVBAR(aimdo, weights_bytes)},
                                           model_loaded_weight_memory=0)
        self._aimdo = aimdo

    def is_dynamic(self):
        return True

    def vbar(self):
        return self.model.dynamic_vbars[self.load_device]

    def loaded_size(self):
        return self.vbar().loaded_size() + self.model.model_loaded_weight_memory

    def run(self):
        """One prompt: load (prioritize, small weights), fault every page as its layer runs, unpin."""
        vbar = self.vbar()
        vbar.prioritize()
        if not self.model.model_loaded_weight_memory and self.small_bytes:
            self._aimdo.allocate(self.small_bytes)
            self.model.model_loaded_weight_memory = self.small_bytes
        for page in range(self.weights_pages):
            if vbar.fault(page, 1):
                vbar.unpin(page, 1)

    def partially_unload(self, memory_to_free):
        freed = self.vbar().free_memory(memory_to_free)
        if freed < memory_to_free and self.model.model_loaded_weight_memory:
            self._aimdo.release(self.model.model_loaded_weight_memory)
            freed += self.model.model_loaded_weight_memory
            self.model.model_loaded_weight_memory = 0
        return freed


class ClassicPatcher:
    def __init__(self, aimdo: AimdoDevice, device: Device, size):
        self.load_device, self.size, self._aimdo = device, size, aimdo
        aimdo.allocate(size)

    def is_dynamic(self):
        return False

    def loaded_size(self):
        return self.size

    def partially_unload(self, memory_to_free):
        self._aimdo.release(self.size)
        freed, self.size = self.size, 0
        return freed


class LoadedModel:
    """comfy.model_management.LoadedModel: a weak reference to its patcher."""

    def __init__(self, patcher):
        self._model = weakref.ref(patcher)
        self.device = patcher.load_device

    @property
    def model(self):
        return self._model()

    def model_loaded_memory(self):
        return self.model.loaded_size()


def unload_all_models(current_loaded_models):
    """What the worker does on the unload_models flag: free_memory(1e30) over the listed models."""
    for loaded in list(current_loaded_models):
        if loaded.model is not None:
            loaded.model.partially_unload(1e30)
    current_loaded_models.clear()
