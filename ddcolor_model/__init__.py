"""DDColor image colourisation in pure PyTorch: model, checkpoint loading, Lab pipeline, CLI.

The names below are imported on first use (PEP 562), so the network and the memory estimate
(``ddcolor_model.ddcolor``, ``ddcolor_model.memory``) import with torch alone; the pipeline
needs numpy and OpenCV only when it is used.
"""
import importlib

_EXPORTS = {
    "DDColor": ".ddcolor", "load_model": ".checkpoint", "load_state_dict_file": ".checkpoint",
    "detect_variant": ".checkpoint", "CheckpointError": ".checkpoint",
    "ColorizeOptions": ".pipeline", "colorize": ".pipeline", "PRESETS": ".presets",
    "SizePreset": ".presets", "round_size": ".presets", "estimate_peak_bytes": ".memory",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
