"""VRAM guard core: probes, hysteresis monitor, admission policy, settings, metrics, estimators.

No ComfyUI import here; gpu_guard.comfy adapts it to ComfyUI's queue and server.
"""
from .guard import FAIL, HOLD, LANE_FAST, LANE_NORMAL, RUN, Admission, Guard, QueueEntry, Verdict

__all__ = ["Admission", "FAIL", "Guard", "HOLD", "LANE_FAST", "LANE_NORMAL", "QueueEntry", "RUN", "Verdict"]
