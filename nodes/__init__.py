"""ComfyUI nodes of the pack: DDColor loader, colorize and download.

The node mappings are imported on first access (PEP 562), so that the ComfyUI-free parts of this
package, such as `python -m nodes.download`, also work outside ComfyUI.
"""


def __getattr__(name):
    if name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        from . import mappings

        return getattr(mappings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
