"""The devices whose memory NVML can read, as candidates for the CUDA device ComfyUI executes on.

A GPU in MIG mode is not one device to CUDA: CUDA runs on one of its MIG instances, whose memory is a
slice of the GPU's. Such a GPU therefore stands for its MIG devices (NVML's MIG handles), matched by
UUID only - they share the parent's PCI address, so the address would pick the whole GPU. A GPU whose
UUID and PCI address both cannot be read is skipped (one of the two is enough to match it); a broken
GPU must not stop the guard from watching a healthy one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Tuple

from .device_match import DeviceIds


@dataclass(frozen=True)
class NvmlDevice:
    handle: Any
    ids: DeviceIds
    label: str  # "1" for a GPU, "0/mig2" for MIG slot 2 of GPU 0


def nvml_devices(nvml) -> Tuple[List[NvmlDevice], List[str]]:
    """(candidates, notes on what was skipped and why), from an initialised pynvml module."""
    devices: List[NvmlDevice] = []
    skipped: List[str] = []
    for index in range(nvml.nvmlDeviceGetCount()):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except nvml.NVMLError as e:
            skipped.append(f"GPU {index} skipped: nvmlDeviceGetHandleByIndex failed ({e})")
            continue
        if _mig_enabled(nvml, handle):
            devices.extend(_mig_devices(nvml, handle, index, skipped))
            continue
        ids = _gpu_ids(nvml, handle, index, skipped)
        if ids is not None:
            devices.append(NvmlDevice(handle, ids, str(index)))
    return devices, skipped


def _mig_enabled(nvml, handle) -> bool:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError:  # NotSupported: a GPU without MIG
        return False
    return current == nvml.NVML_DEVICE_MIG_ENABLE


def _mig_devices(nvml, handle, index: int, skipped: list) -> List[NvmlDevice]:
    try:
        slots = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except nvml.NVMLError as e:
        skipped.append(f"GPU {index} (MIG on) skipped: nvmlDeviceGetMaxMigDeviceCount failed ({e})")
        return []
    found = []
    for slot in range(slots):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError as e:
            if getattr(e, "value", None) != nvml.NVML_ERROR_NOT_FOUND:  # NotFound: an empty slot
                skipped.append(f"GPU {index} MIG slot {slot} skipped: "
                               f"nvmlDeviceGetMigDeviceHandleByIndex failed ({e})")
            continue
        try:
            found.append(NvmlDevice(mig, DeviceIds(nvml.nvmlDeviceGetUUID(mig)), f"{index}/mig{slot}"))
        except nvml.NVMLError as e:
            skipped.append(f"GPU {index} MIG slot {slot} skipped: nvmlDeviceGetUUID failed ({e})")
    return found


def _gpu_ids(nvml, handle, index: int, skipped: list):
    failures = []
    try:
        uuid = nvml.nvmlDeviceGetUUID(handle)
    except nvml.NVMLError as e:
        uuid = None
        failures.append(f"nvmlDeviceGetUUID failed ({e})")
    try:
        pci = nvml.nvmlDeviceGetPciInfo(handle)
        address = (pci.domain, pci.bus, pci.device)
    except nvml.NVMLError as e:
        address = (None, None, None)
        failures.append(f"nvmlDeviceGetPciInfo failed ({e})")
    if uuid is None and address[0] is None:
        skipped.append(f"GPU {index} skipped: " + "; ".join(failures))
        return None
    return DeviceIds(uuid, *address)
