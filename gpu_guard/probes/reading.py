"""What a probe returns, and the measure the guard acts on.

Two figures matter and both are shown: the device's used memory (what nvidia-smi says) and the
pressure the guard acts on. Pressure is what ComfyUI cannot relieve by itself: device used minus the
memory this process's torch cache holds unused, minus the memory held by this ComfyUI's idle models
(ComfyUI evicts both when the next prompt needs the room: model_management.free_memory), minus, while
a prompt runs, everything else this process holds (the running prompt's own memory is never pressure),
minus any further reclaimable memory a caller supplies (`other_reclaimable`, by kind).
"""
from __future__ import annotations

from typing import Mapping, NamedTuple


class ProbeError(RuntimeError):
    """A reading could not be taken; the message names the sensor, the problem and the fix."""


def pressure_bytes(used_bytes: int, *reclaimable: int) -> int:
    """Device used minus what ComfyUI could reclaim by itself (never below zero)."""
    return max(0, used_bytes - sum(max(0, r) for r in reclaimable))


def pressure_ratio(used_bytes: int, total_bytes: int, reclaimable_bytes: int = 0) -> float:
    """Pressure as a fraction of the device (clamped to [0, 1])."""
    if total_bytes <= 0:
        raise ProbeError(f"total memory must be > 0 bytes, got {total_bytes}")
    return min(1.0, pressure_bytes(used_bytes, reclaimable_bytes) / total_bytes)


def torch_reclaimable_bytes(stats: Mapping[str, int]) -> int:
    """Bytes torch reserves but no tensor occupies, from torch.cuda.memory_stats() (reserved - active,
    the same figures ComfyUI's model_management.get_free_memory uses)."""
    reserved = int(stats.get("reserved_bytes.all.current", 0))
    active = int(stats.get("active_bytes.all.current", 0))
    return max(0, reserved - active)


class Reading(NamedTuple):
    """One reading of the device. A tuple: the worker takes one at every dispatch, and a tuple is
    built in a fraction of a frozen dataclass's time (bench/bench_queue_hook.py)."""

    used_bytes: int  # the device's used memory, all processes (what nvidia-smi says)
    total_bytes: int
    reclaimable_bytes: int  # this process's torch cache: reserved, no tensor in it
    at: float  # wall-clock time (time.time()) the reading was taken
    idle_models_bytes: int = 0  # this ComfyUI's loaded models on the guarded device, none in use
    own_bytes: int = 0  # everything this process holds on the device (torch reserved), as far as known
    prompt_bytes: int = 0  # while a prompt runs: this process's memory except its torch cache (the prompt's)
    other_reclaimable: tuple = ()  # ((kind, bytes), ...) further memory that can be freed on request

    def _freeable(self) -> int:
        freeable = self.reclaimable_bytes + self.idle_models_bytes + self.prompt_bytes
        if self.other_reclaimable:
            freeable += sum(max(0, b) for _, b in self.other_reclaimable)
        return freeable

    @property
    def pressure_bytes(self) -> int:
        return max(0, self.used_bytes - self._freeable())

    @property
    def ratio(self) -> float:
        """The pressure ratio the guard acts on."""
        if self.total_bytes <= 0:
            raise ProbeError(f"total memory must be > 0 bytes, got {self.total_bytes}")
        return min(1.0, max(0, self.used_bytes - self._freeable()) / self.total_bytes)

    @property
    def device_ratio(self) -> float:
        """The device's used fraction, reclaimable memory included."""
        return min(1.0, self.used_bytes / self.total_bytes) if self.total_bytes > 0 else 1.0

    @property
    def free_bytes(self) -> int:
        """Memory a new workload could use now: really free plus what ComfyUI can reclaim."""
        return max(0, self.total_bytes - self.pressure_bytes)

    def as_dict(self) -> dict:
        return {"used_bytes": self.used_bytes, "total_bytes": self.total_bytes,
                "device_ratio": round(self.device_ratio, 6),
                "pressure_bytes": self.pressure_bytes, "ratio": round(self.ratio, 6),
                "reclaimable_bytes": self._freeable() - self.prompt_bytes,
                "reclaimable": {"torch_cache_bytes": self.reclaimable_bytes,
                                "idle_models_bytes": self.idle_models_bytes,
                                **{f"{kind}_bytes": b for kind, b in self.other_reclaimable}},
                "running_prompt_bytes": self.prompt_bytes,
                "at": self.at}
