"""A simulated GPU whose memory follows this ComfyUI: `GPU_GUARD_PROBE=sim:PATH`. A test and drill tool.

PATH holds {"total_bytes": N, "foreign_bytes": F}: the device's size and what other processes hold on
it; it is re-read at every reading, so a drill moves foreign memory by rewriting it (atomically: write
a temporary file, then rename). On top of that the device holds what this ComfyUI would hold on a GPU:

- the models ComfyUI has loaded on its compute device (`set_models_source`, asked at every reading);
- while a prompt runs, its working set: the sum of its nodes' VRAM_ESTIMATEs (`prompt_started`);
- after the prompt, that working set stays reserved as torch's caching allocator keeps it: unused
  and reclaimable, until ComfyUI empties its cache (`cache_emptied`, ComfyUI's soft_empty_cache), and
  the next prompt reuses it before it asks for more (reserved = max(reserved, working set)).

A device over-committed by the figures reads as full (a real one would have failed the allocation); the
other processes keep their bytes and this process is counted with what is left.
The exact-number drills use the static file probe (file:PATH) instead.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .file_probe import JsonFile, byte_count
from .reading import ProbeError, Reading

log = logging.getLogger("gpu_guard")

_SHAPE = '{"total_bytes": N, "foreign_bytes": F}'


class SimDevice:
    """This process's torch allocator on the simulated device: reserved and active bytes. Changes are
    made under a lock; a reading takes both figures as one tuple, replaced in one assignment."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reserved = 0  # what the allocator holds from the device
        self.active = 0  # what the running prompt's tensors occupy (0 between prompts)
        self.peak = 0  # the most `active` reached since the running prompt started (its measured peak)
        self._figures = (0, 0)

    def prompt_started(self, working_bytes: int) -> None:
        with self._lock:
            self.active = max(0, int(working_bytes))
            self.reserved = max(self.reserved, self.active)
            self.peak = self.active
            self._figures = (self.reserved, self.active)

    def allocate(self, extra_bytes: int) -> None:
        """The running prompt takes more than its estimate (a drill node allocating on the device)."""
        with self._lock:
            self.active += max(0, int(extra_bytes))
            self.reserved = max(self.reserved, self.active)
            self.peak = max(self.peak, self.active)
            self._figures = (self.reserved, self.active)

    def prompt_finished(self) -> None:
        with self._lock:
            self.active = 0
            self._figures = (self.reserved, self.active)

    def cache_emptied(self) -> None:
        with self._lock:
            self.reserved = self.active
            self._figures = (self.reserved, self.active)

    def snapshot(self) -> tuple:
        """(reserved, active) as of one change."""
        return self._figures


class SimProbe:
    follows_comfy = True  # the adapter tells it about models, prompts and cache emptying

    def __init__(self, path: str, wall: Callable[[], float] = time.time):
        self.path = path
        self.name = f"sim:{path}"
        self.device = SimDevice()
        self._wall = wall
        self._models: Callable[[], int] = lambda: 0
        self._file = JsonFile(path, _SHAPE, ("total_bytes", "foreign_bytes"), self._figures)

    def set_models_source(self, models_bytes: Callable[[], int]) -> None:
        """`models_bytes()` -> bytes of the models ComfyUI holds on its compute device."""
        self._models = models_bytes

    def _figures(self, data: dict) -> tuple:
        total = byte_count(data, "total_bytes", self.path, _SHAPE)
        foreign = byte_count(data, "foreign_bytes", self.path, _SHAPE)
        if total == 0:
            raise ProbeError(f"probe file {self.path}: total_bytes must be > 0")
        return total, foreign

    def read(self) -> Reading:
        total, foreign = self._file.read()
        try:
            models = max(0, int(self._models() or 0))
        except Exception as e:  # noqa: BLE001 - the simulated device cannot be read without it
            raise ProbeError(f"sim device {self.path}: ComfyUI's loaded models could not be measured "
                             f"({type(e).__name__}: {e})") from None
        reserved, active = self.device.snapshot()
        used = min(total, foreign + models + reserved)
        own = used - foreign  # over-committed: the other processes keep theirs, this one gets the rest
        cache = min(reserved - active, own - min(models, own))
        return Reading(used, total, cache, self._wall(), 0, own)
