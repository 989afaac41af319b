"""Which node schema the pack exports to ComfyUI: V3 (`comfy_entrypoint`) where ComfyUI has
comfy_api.latest, else the V1 mappings; DDCOLOR_NODE_SCHEMA=v1 forces V1.

Exactly one is exported: ComfyUI loads a pack's NODE_CLASS_MAPPINGS first and ignores its
comfy_entrypoint then (nodes.load_custom_node in 0.3.75).
"""
import importlib.util
import logging
import os

SCHEMA_ENV = "DDCOLOR_NODE_SCHEMA"
CHOICES = ("auto", "v1")

_log = logging.getLogger(__name__)


def has_v3_api():
    try:
        return importlib.util.find_spec("comfy_api.latest") is not None
    except ImportError:  # no comfy_api package at all: an older ComfyUI, or no ComfyUI
        return False


def wants_v3(environ=None):
    choice = (environ if environ is not None else os.environ).get(SCHEMA_ENV, "").strip().lower() or "auto"
    if choice not in CHOICES:
        _log.warning("DDColor: %s=%r is not one of %s; using auto", SCHEMA_ENV, choice, ", ".join(CHOICES))
    return choice != "v1" and has_v3_api()


def exports():
    """{"comfy_entrypoint": fn} (V3) or {"NODE_CLASS_MAPPINGS": ..., "NODE_DISPLAY_NAME_MAPPINGS": ...} (V1)."""
    if wants_v3():
        from .v3 import comfy_entrypoint

        _log.info("DDColor: nodes exported in the V3 schema (%s=v1 exports V1)", SCHEMA_ENV)
        return {"comfy_entrypoint": comfy_entrypoint}
    from .mappings import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    return {"NODE_CLASS_MAPPINGS": NODE_CLASS_MAPPINGS, "NODE_DISPLAY_NAME_MAPPINGS": NODE_DISPLAY_NAME_MAPPINGS}
