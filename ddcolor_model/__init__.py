"""DDColor image colourisation in pure PyTorch: model, checkpoint loading, Lab pipeline, CLI."""
from .checkpoint import CheckpointError, detect_variant, load_model, load_state_dict_file
from .ddcolor import DDColor
from .memory import estimate_peak_bytes
from .pipeline import ColorizeOptions, colorize
from .presets import PRESETS, SizePreset, round_size

__all__ = [
    "DDColor", "load_model", "load_state_dict_file", "detect_variant", "CheckpointError",
    "ColorizeOptions", "colorize", "PRESETS", "SizePreset", "round_size", "estimate_peak_bytes",
]
