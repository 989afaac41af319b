"""Memory sensors. make_probe(spec) builds one from auto | nvml | torch | ram | file:PATH | off."""
from __future__ import annotations

import time
from typing import Callable, Optional

from .device_match import DeviceIds, match_nvml_index, normalize_uuid
from .file_probe import FileProbe
from .ram import RamProbe
from .reading import ProbeError, Reading, pressure_ratio, torch_reclaimable_bytes

__all__ = ["DeviceIds", "FailedProbe", "FileProbe", "ProbeError", "RamProbe", "Reading", "make_probe",
           "match_nvml_index", "normalize_uuid", "pressure_ratio", "torch_reclaimable_bytes"]


class FailedProbe:
    """A probe that could not be set up: every read reports why, so the sensor-failure policy applies."""

    def __init__(self, name: str, error: str):
        self.name = name
        self.error = error

    def read(self) -> Reading:
        raise ProbeError(self.error)


def make_probe(spec: str, device_index: Optional[int] = None, wall: Callable[[], float] = time.time):
    """(probe or None, note). None means the guard is off; the note says why (shown in the status)."""
    from .cuda import NvmlProbe, TorchProbe

    if spec == "off":
        return None, "probe off (GPU_GUARD_PROBE=off)"
    if spec.startswith("file:"):
        return FileProbe(spec[len("file:"):], wall), None
    if spec == "ram":
        return RamProbe(wall), None
    builders = {"nvml": NvmlProbe, "torch": TorchProbe}
    if spec in builders:
        try:
            return builders[spec](device_index, wall), None
        except ProbeError as e:
            return FailedProbe(spec, str(e)), f"probe {spec} could not start: {e}"
        except Exception as e:  # noqa: BLE001 - report, never crash ComfyUI
            return FailedProbe(spec, f"{type(e).__name__}: {e}"), f"probe {spec} could not start: {e}"
    notes = []
    for name in ("nvml", "torch"):
        try:
            return builders[name](device_index, wall), "; ".join(notes) or None
        except Exception as e:  # noqa: BLE001 - try the next sensor
            notes.append(f"{name}: {e}")
    return None, "auto: no GPU sensor (" + "; ".join(notes) + "); the guard is off on this host"
