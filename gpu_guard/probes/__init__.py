"""Memory sensors. make_probe(spec) builds one from auto | nvml | torch | ram | file:PATH | sim:PATH | off."""
from __future__ import annotations

import time
from typing import Callable, Optional

from .device_match import DeviceIds, match_nvml_index, normalize_uuid
from .file_probe import FileProbe
from .ram import RamProbe
from .sim import SimProbe
from .sim_shared import SharedSimProbe
from .reading import ProbeError, Reading, pressure_ratio, torch_reclaimable_bytes

__all__ = ["DeviceIds", "FailedProbe", "FileProbe", "ProbeError", "RamProbe", "Reading", "SimProbe", "make_probe",
           "match_nvml_index", "normalize_uuid", "pressure_ratio", "torch_reclaimable_bytes"]


class FailedProbe:
    """A probe that could not be set up: every read reports why, so the sensor-failure policy applies."""

    def __init__(self, name: str, error: str):
        self.name = name
        self.error = error

    def read(self) -> Reading:
        raise ProbeError(self.error)


def make_probe(spec: str, device_index: Optional[int] = None, wall: Callable[[], float] = time.time,
               compute_device: Optional[str] = None):
    """(probe or None, note). None means the guard is off; the note says why (shown in the status).

    `compute_device` is the type of the torch device ComfyUI executes on ("cuda", "cpu", "mps", ...;
    None: unknown, taken as CUDA). On anything but CUDA the auto probe turns the guard off without
    touching CUDA (no context is created); a probe named explicitly is used as asked.
    """
    from .cuda import NvmlProbe, TorchProbe

    if spec == "off":
        return None, "probe off (GPU_GUARD_PROBE=off)"
    if spec == "auto" and compute_device not in (None, "cuda"):
        return None, (f"ComfyUI executes on {compute_device}, not on a CUDA GPU (e.g. --cpu), so the guard is "
                      "off; set GPU_GUARD_PROBE (nvml, torch, ram, file:PATH or sim:PATH) to guard anyway")
    if spec.startswith("file:"):
        return FileProbe(spec[len("file:"):], wall), None
    if spec.startswith("sim:"):
        return SharedSimProbe(spec[len("sim:"):], wall), "simulated GPU (sim:) - a test and drill tool, not a sensor"
    if spec == "ram":
        return RamProbe(wall), None
    builders = {"nvml": NvmlProbe, "torch": TorchProbe}
    if spec in builders:
        try:
            probe = builders[spec](device_index, wall)
            return probe, getattr(probe, "note", None)
        except ProbeError as e:
            return FailedProbe(spec, str(e)), f"probe {spec} could not start: {e}"
        except Exception as e:  # noqa: BLE001 - report, never crash ComfyUI
            return FailedProbe(spec, f"{type(e).__name__}: {e}"), f"probe {spec} could not start: {e}"
    notes = []
    for name in ("nvml", "torch"):
        try:
            probe = builders[name](device_index, wall)
            notes.append(getattr(probe, "note", None) or "")
            return probe, "; ".join(n for n in notes if n) or None
        except Exception as e:  # noqa: BLE001 - try the next sensor
            notes.append(f"{name}: {e}")
    return None, "auto: no GPU sensor (" + "; ".join(notes) + "); the guard is off on this host"
