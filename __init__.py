"""ComfyUI entry point of the DDColor + VRAM Guard pack.

ComfyUI imports this file at start-up. Each part is set up on its own and a failure is logged with
its cause instead of raised, so that a broken part never stops ComfyUI from starting.
"""
import logging

_log = logging.getLogger("ddcolor_vram_guard")

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
WEB_DIRECTORY = "./web"

try:
    from .nodes import NODE_CLASS_MAPPINGS as _classes, NODE_DISPLAY_NAME_MAPPINGS as _names

    NODE_CLASS_MAPPINGS.update(_classes)
    NODE_DISPLAY_NAME_MAPPINGS.update(_names)
except Exception:  # noqa: BLE001 - never break ComfyUI's start
    _log.exception("DDColor nodes failed to load; the rest of ComfyUI is unaffected")

try:
    from .gpu_guard.comfy import install as _install_guard

    _install_guard()
except Exception:  # noqa: BLE001 - never break ComfyUI's start
    _log.exception("VRAM guard failed to install; prompts run unguarded")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
