"""The guard's operations layer inside ComfyUI: the event log lives next to gpu_guard.json in
ComfyUI's user directory; the service gets the guard's live settings and its events."""
from __future__ import annotations

import socket

from .. import config as config_module
from ..ops import OpsService
from ..ops.event_log import FILE_NAME
from .user_dir import user_file


def event_log_path(guard):
    """The log's path (named for this process when another one shares the user directory), or None
    when ComfyUI's user directory is unknown or not ours to use."""
    return user_file(guard, FILE_NAME)


def make_ops(guard, port=None) -> OpsService:
    source = socket.gethostname() + (f":{port}" if port else "")
    return OpsService(lambda: guard.config, event_log_path(guard), snapshot=lambda: rule_snapshot(guard.status()),
                      source=source, shown_value=config_module.shown_value)


def rule_snapshot(status: dict) -> dict:
    """What the alert rules read live: prompts held now, and whether the sensor has read in this life
    with no error since (evidence that a sensor alert restored from the log is over)."""
    probe = status.get("probe") or {}
    return {"held": len(status["held"]), "sensor_reads": status.get("reading") is not None and bool(probe.get("ok"))}


def start_ops(guard, ops: OpsService):
    """Subscribe first (events from now on wait in the service's queue), then replay the log and start."""
    unsubscribe = guard.subscribe_events(ops.handle)
    ops.start()
    return unsubscribe
