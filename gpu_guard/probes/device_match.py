"""Find the NVML device that is the CUDA device ComfyUI executes on.

CUDA and NVML number devices differently (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER), so the index
alone is wrong on multi-GPU hosts. The UUID identifies a device in both; the PCI address is the
fallback when a UUID is missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from .reading import ProbeError


@dataclass(frozen=True)
class DeviceIds:
    uuid: Optional[str] = None
    pci_domain: Optional[int] = None
    pci_bus: Optional[int] = None
    pci_device: Optional[int] = None

    def pci(self) -> Optional[tuple]:
        parts = (self.pci_domain, self.pci_bus, self.pci_device)
        return None if None in parts else parts

    def describe(self) -> str:
        pci = self.pci()
        address = f"{pci[0]:04x}:{pci[1]:02x}:{pci[2]:02x}" if pci else "unknown PCI address"
        return f"uuid {self.uuid or 'unknown'}, {address}"


def normalize_uuid(uuid) -> Optional[str]:
    """NVML writes "GPU-6bd2...", torch "6bd2..."; compare the bare lower-case form."""
    if uuid is None:
        return None
    text = uuid.decode("ascii", "replace") if isinstance(uuid, bytes) else str(uuid)
    text = text.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text or None


def match_nvml_index(cuda: DeviceIds, nvml_devices: Sequence[DeviceIds]) -> int:
    """Position in nvml_devices (NVML's numbering) of the device described by cuda."""
    wanted = normalize_uuid(cuda.uuid)
    if wanted:
        hits = [i for i, d in enumerate(nvml_devices) if normalize_uuid(d.uuid) == wanted]
        if len(hits) == 1:
            return hits[0]
    address = cuda.pci()
    if address:
        hits = [i for i, d in enumerate(nvml_devices) if d.pci() == address]
        if len(hits) == 1:
            return hits[0]
    seen = "; ".join(d.describe() for d in nvml_devices) or "none"
    raise ProbeError(f"no NVML device matches the CUDA device ({cuda.describe()}); NVML sees: {seen}. "
                     "Use GPU_GUARD_PROBE=torch instead")


def device_key(ids: DeviceIds) -> Optional[str]:
    """One physical device's name across processes (the neighbours registry): its UUID (a MIG slice has
    its own), else its PCI address; None when neither is known."""
    uuid = normalize_uuid(ids.uuid)
    if uuid:
        return "gpu:" + uuid
    pci = ids.pci()
    return "pci:%04x:%02x:%02x" % pci if pci else None
