"""A stand-in for pynvml (this suite needs no GPU): the real module's function names, constants and
error types, answering from a description of the devices.

Only the calls the probes make are here. Failures are raised as pynvml's own NVMLError subclasses
(e.g. NVMLError_GpuIsLost), from the real nvidia-ml-py module, which is imported but never initialised.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import List, Optional

import pytest

pynvml = pytest.importorskip("pynvml")  # nvidia-ml-py, a requirement of the pack

GIB = 1 << 30


@dataclass
class Mig:
    uuid: str  # as NVML writes it: "MIG-<uuid>"
    used: int
    total: int


@dataclass
class Gpu:
    uuid: str  # "GPU-<uuid>"
    bus: int
    used: int
    total: int = 80 * GIB
    fails: dict = field(default_factory=dict)  # call name -> NVML error code it fails with
    mig: Optional[List[Optional[Mig]]] = None  # None: no MIG support; a list: MIG on, None entries empty slots
    mig_mode_off: bool = False  # MIG-capable, but MIG is disabled


class StandInNvml(types.ModuleType):
    NVMLError = pynvml.NVMLError
    NVML_DEVICE_MIG_DISABLE = pynvml.NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE
    NVML_ERROR_NOT_FOUND = pynvml.NVML_ERROR_NOT_FOUND
    NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST

    def __init__(self, gpus: List[Gpu]):
        super().__init__("pynvml")
        self.gpus = gpus
        self.calls: list = []

    def _gpu(self, handle, call):
        self.calls.append((call, handle))
        gpu = self.gpus[handle[1]]
        if call in gpu.fails:
            raise pynvml.NVMLError(gpu.fails[call])
        return gpu

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._gpu(("gpu", index), "nvmlDeviceGetHandleByIndex")
        return ("gpu", index)

    def nvmlDeviceGetUUID(self, handle):
        if handle[0] == "mig":
            return self.gpus[handle[1]].mig[handle[2]].uuid
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetPciInfo(self, handle):
        if handle[0] == "mig":  # a MIG device reports its parent's address
            handle = ("gpu", handle[1])
        gpu = self._gpu(handle, "nvmlDeviceGetPciInfo")
        return types.SimpleNamespace(domain=0, bus=gpu.bus, device=0)

    def nvmlDeviceGetMigMode(self, handle):
        gpu = self._gpu(handle, "nvmlDeviceGetMigMode")
        if gpu.mig is None and not gpu.mig_mode_off:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_DISABLE if gpu.mig_mode_off else pynvml.NVML_DEVICE_MIG_ENABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        return len(self._gpu(handle, "nvmlDeviceGetMaxMigDeviceCount").mig or [])

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):
        gpu = self._gpu(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        if gpu.mig_mode_off or gpu.mig is None or index >= len(gpu.mig) or gpu.mig[index] is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return ("mig", handle[1], index)

    def nvmlDeviceGetMemoryInfo(self, handle):
        if handle[0] == "mig":
            mig = self.gpus[handle[1]].mig[handle[2]]
            return types.SimpleNamespace(used=mig.used, total=mig.total, free=mig.total - mig.used)
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        return types.SimpleNamespace(used=gpu.used, total=gpu.total, free=gpu.total - gpu.used)
