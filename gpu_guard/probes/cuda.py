"""Probes of the CUDA device ComfyUI executes on: through NVML (nvidia-ml-py) or torch."""
from __future__ import annotations

import time
from typing import Callable, Optional

from .device_match import DeviceIds, device_key, match_nvml_index
from .nvml_devices import nvml_devices
from .reading import ProbeError, Reading, torch_reclaimable_bytes


def _torch_cuda():
    import torch

    if not torch.cuda.is_available():
        raise ProbeError("torch sees no CUDA device")
    return torch.cuda


def resolve_device_index(device_index: Optional[int]) -> int:
    cuda = _torch_cuda()
    return cuda.current_device() if device_index is None else int(device_index)


def cuda_device_ids(device_index: int) -> DeviceIds:
    props = _torch_cuda().get_device_properties(device_index)
    uuid = getattr(props, "uuid", None)
    return DeviceIds(str(uuid) if uuid is not None else None, getattr(props, "pci_domain_id", None),
                     getattr(props, "pci_bus_id", None), getattr(props, "pci_device_id", None))


def this_process(device_index: int) -> tuple:
    """(torch cache bytes this process could hand back, bytes its allocator reserves); (0, 0) until CUDA
    is initialised (reading the stats must not create a CUDA context from the poll thread)."""
    try:
        import torch

        if not torch.cuda.is_initialized():
            return 0, 0
        stats = torch.cuda.memory_stats(device_index)
        return torch_reclaimable_bytes(stats), int(stats.get("reserved_bytes.all.current", 0))
    except Exception:  # noqa: BLE001 - the figures are a refinement; the reading stands without them
        return 0, 0


def _reading(used: int, total: int, device_index: int, at: float) -> Reading:
    cache, reserved = this_process(device_index)
    return Reading(used, total, cache, at, own_bytes=min(reserved, used))


class TorchProbe:
    def __init__(self, device_index: Optional[int] = None, wall: Callable[[], float] = time.time):
        self.device_index = resolve_device_index(device_index)
        self.name = f"torch:cuda:{self.device_index}"
        self._wall = wall
        try:
            self.device_key = device_key(cuda_device_ids(self.device_index))
        except Exception:  # noqa: BLE001 - no key: this guard has no neighbours
            self.device_key = None

    def read(self) -> Reading:
        try:
            free, total = _torch_cuda().mem_get_info(self.device_index)
        except ProbeError:
            raise
        except Exception as e:  # noqa: BLE001 - any driver failure is a sensor failure
            raise ProbeError(f"torch.cuda.mem_get_info({self.device_index}) failed: {e}") from None
        return _reading(total - free, total, self.device_index, self._wall())


class NvmlProbe:
    """The NVML device (a GPU, or a MIG instance) that is CUDA's `device_index`. `note` says which GPUs
    NVML could not identify and skipped (None when none)."""

    def __init__(self, device_index: Optional[int] = None, wall: Callable[[], float] = time.time):
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as e:  # noqa: BLE001 - a missing library or driver
            raise ProbeError(f"NVML is not available ({e}); install nvidia-ml-py and the NVIDIA driver, "
                             "or use GPU_GUARD_PROBE=torch") from None
        self._nvml = pynvml
        self.device_index = resolve_device_index(device_index)
        devices, skipped = nvml_devices(pynvml)
        self.note = "NVML: " + "; ".join(skipped) if skipped else None
        try:
            found = devices[match_nvml_index(cuda_device_ids(self.device_index), [d.ids for d in devices])]
        except ProbeError as e:
            raise ProbeError(f"{e}{' (' + self.note + ')' if self.note else ''}") from None
        self._handle = found.handle
        self.name = f"nvml:{found.label} (cuda:{self.device_index})"
        self.device_key = device_key(found.ids)
        self._wall = wall

    def read(self) -> Reading:
        try:
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
        except Exception as e:  # noqa: BLE001 - any NVML failure is a sensor failure
            raise ProbeError(f"nvmlDeviceGetMemoryInfo failed: {e}") from None
        return _reading(int(memory.used), int(memory.total), self.device_index, self._wall())
