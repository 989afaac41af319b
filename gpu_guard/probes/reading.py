"""What a probe returns, and the measure the guard acts on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


class ProbeError(RuntimeError):
    """A reading could not be taken; the message names the sensor, the problem and the fix."""


def pressure_ratio(used_bytes: int, total_bytes: int, reclaimable_bytes: int = 0) -> float:
    """Used fraction of the device as ComfyUI sees pressure.

    Memory that this process's torch caching allocator holds but does not use is reclaimable: ComfyUI's
    own free-memory computation counts it as free, so the guard must not wait for it either.
    """
    if total_bytes <= 0:
        raise ProbeError(f"total memory must be > 0 bytes, got {total_bytes}")
    pressure = max(0, used_bytes - max(0, reclaimable_bytes))
    return min(1.0, pressure / total_bytes)


def torch_reclaimable_bytes(stats: Mapping[str, int]) -> int:
    """Bytes torch reserves but no tensor occupies, from torch.cuda.memory_stats() (reserved - active,
    the same figures ComfyUI's model_management.get_free_memory uses)."""
    reserved = int(stats.get("reserved_bytes.all.current", 0))
    active = int(stats.get("active_bytes.all.current", 0))
    return max(0, reserved - active)


@dataclass(frozen=True)
class Reading:
    used_bytes: int
    total_bytes: int
    reclaimable_bytes: int
    at: float  # wall-clock time (time.time()) the reading was taken

    @property
    def ratio(self) -> float:
        return pressure_ratio(self.used_bytes, self.total_bytes, self.reclaimable_bytes)

    @property
    def free_bytes(self) -> int:
        """Memory a new workload could use now: really free plus what ComfyUI can reclaim."""
        return max(0, self.total_bytes - self.used_bytes + self.reclaimable_bytes)

    def as_dict(self) -> dict:
        return {"used_bytes": self.used_bytes, "total_bytes": self.total_bytes,
                "reclaimable_bytes": self.reclaimable_bytes, "ratio": round(self.ratio, 6), "at": self.at}
