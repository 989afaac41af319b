"""The torch device ComfyUI executes on, from its model management.

Read without creating a CUDA context: on --cpu (and MPS, XPU, DirectML) `get_torch_device()` returns
before it touches CUDA, and on CUDA ComfyUI has already created its context when it imported model
management. The guard must not create one on a host whose ComfyUI does not use the GPU.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

_log = logging.getLogger("gpu_guard.comfy")


@dataclass(frozen=True)
class ComputeDevice:
    type: Optional[str]  # "cuda", "cpu", "mps", "xpu", "privateuseone" (DirectML)...; None: unknown
    index: Optional[int]  # the CUDA index; None: not CUDA, or torch's current device
    name: Optional[str] = None  # str(torch device), as ComfyUI's LoadedModel.device prints: "cuda:0", "cpu"


def comfy_compute_device() -> ComputeDevice:
    try:
        import comfy.model_management as model_management

        device = model_management.get_torch_device()
    except Exception:  # noqa: BLE001 - unusual builds: the probe takes torch's current CUDA device
        _log.warning("VRAM guard: ComfyUI's compute device is unknown; guarding torch's current CUDA device",
                     exc_info=True)
        return ComputeDevice(None, None)
    kind = getattr(device, "type", None)
    return ComputeDevice(kind, device.index if kind == "cuda" else None, str(device))
