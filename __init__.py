"""ComfyUI entry point of the DDColor + VRAM Guard pack.

ComfyUI imports this file at start-up. Each part is set up on its own and a failure is logged with
its cause instead of raised, so that a broken part never stops ComfyUI from starting.
"""
import logging

_log = logging.getLogger("ddcolor_vram_guard")

WEB_DIRECTORY = "./web"

_nodes = {}
try:
    from .nodes import exports as _node_exports

    _nodes = _node_exports()
except Exception:  # noqa: BLE001 - never break ComfyUI's start
    _log.exception("DDColor nodes failed to load; the rest of ComfyUI is unaffected")

# Exactly one node schema: ComfyUI reads NODE_CLASS_MAPPINGS first, so V3 must not define it.
if "comfy_entrypoint" in _nodes:
    comfy_entrypoint = _nodes["comfy_entrypoint"]
    __all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
else:
    NODE_CLASS_MAPPINGS = dict(_nodes.get("NODE_CLASS_MAPPINGS", {}))
    NODE_DISPLAY_NAME_MAPPINGS = dict(_nodes.get("NODE_DISPLAY_NAME_MAPPINGS", {}))
    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]

try:
    from .gpu_guard.comfy import install as _install_guard

    _install_guard()
except Exception:  # noqa: BLE001 - never break ComfyUI's start
    _log.exception("VRAM guard failed to install; prompts run unguarded")

