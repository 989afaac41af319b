"""Operations for the VRAM guard: event log, per-day counters, alert rules, webhook targets.

No ComfyUI import here: the adapter (gpu_guard/comfy/adapter.py) creates an OpsService with the
guard's settings and subscribes it to the guard's events.
"""
from .alert_rules import FIRING, RESOLVED, RULE_NAMES, Notification
from .service import OpsService

__all__ = ["FIRING", "Notification", "OpsService", "RESOLVED", "RULE_NAMES"]
