"""System RAM as the sensor (for CPU or unified-memory setups, and for drills)."""
from __future__ import annotations

import time
from typing import Callable

from .reading import ProbeError, Reading


class RamProbe:
    name = "ram"
    measures_ram = True  # ComfyUI's models on a GPU are not in this reading

    def __init__(self, wall: Callable[[], float] = time.time):
        self._wall = wall

    def read(self) -> Reading:
        try:
            import psutil

            memory = psutil.virtual_memory()
        except Exception as e:  # noqa: BLE001 - any failure is a sensor failure
            raise ProbeError(f"system RAM could not be read through psutil: {e}") from None
        # "available" is what the OS can hand out without swapping; the rest is pressure.
        return Reading(memory.total - memory.available, memory.total, 0, self._wall())
