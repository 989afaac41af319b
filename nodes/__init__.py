"""ComfyUI nodes of the pack: DDColor loader, colorize and download.

The node mappings are imported on first access (PEP 562), so that the ComfyUI-free parts of this
package, such as `python -m nodes.download`, also work outside ComfyUI. `exports()` is what the pack
hands to ComfyUI: V3 or V1 nodes (nodes/entry.py).
"""


def exports():
    from .entry import exports as _exports

    return _exports()


def __getattr__(name):
    if name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        from . import mappings

        return getattr(mappings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
