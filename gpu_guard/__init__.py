"""VRAM guard core: probes, hysteresis monitor, admission policy, settings, metrics, estimators.

No ComfyUI import here; gpu_guard.comfy adapts it to ComfyUI's queue and server. The facade's names
are loaded on first use, so that a node pack registering an estimator (`from gpu_guard import
estimators`) does not pull in the guard's dependencies.
"""
import importlib

_FACADE = ("Admission", "FAIL", "Guard", "HOLD", "LANE_FAST", "LANE_NORMAL", "QueueEntry", "RUN", "Verdict")

__all__ = list(_FACADE)


def __getattr__(name):
    if name in _FACADE:
        return getattr(importlib.import_module(".guard", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
