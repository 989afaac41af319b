"""What the running prompt took at most on the device: the measure the learned peaks are made of.

- CUDA: `torch.cuda.max_memory_allocated`, reset when the prompt starts (torch is imported only here,
  and only for a CUDA device).
- The simulated GPU (GPU_GUARD_PROBE=sim:PATH): its working set stands in for the measured peak.
- Anything else (CPU, RAM probe): no meter, nothing is learned.
"""
from __future__ import annotations

from typing import Optional


class CudaPeakMeter:
    name = "cuda"

    def __init__(self, device_index: int):
        import torch

        self._cuda = torch.cuda
        self.device_index = device_index

    def reset(self) -> None:
        self._cuda.reset_peak_memory_stats(self.device_index)

    def peak(self) -> Optional[int]:
        return int(self._cuda.max_memory_allocated(self.device_index))


class SimPeakMeter:
    name = "sim"

    def __init__(self, device):
        self.device = device

    def reset(self) -> None:
        pass  # the simulated device starts each prompt's peak itself (SimDevice.prompt_started)

    def peak(self) -> Optional[int]:
        return int(self.device.peak)


def make_peak_meter(probe, device_type: Optional[str], device_index: Optional[int]):
    """The meter for this guard's device, or None when peaks cannot be measured there."""
    if getattr(probe, "follows_comfy", False):
        return SimPeakMeter(probe.device)
    if device_type == "cuda":
        return CudaPeakMeter(device_index or 0)
    return None
