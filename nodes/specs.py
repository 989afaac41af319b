"""Declarative input/output specs of every node in the pack, kept in one place.

Each spec is plain data (name -> (type, options)) so that the V1 `INPUT_TYPES` of the node classes
is a one-line lookup and a port to the V3 schema (`io.Schema(inputs=[...])`) is a mechanical rewrite.
Lists of choices that depend on the running ComfyUI (checkpoint files) are filled in at call time.
"""
from .releases import RELEASES

PRESET_CHOICES = ("person", "building", "custom")
DEVICE_CHOICES = ("auto", "cpu", "gpu")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
AB_UPSAMPLE_CHOICES = ("nearest", "bilinear")

# Bounds of the "custom" preset's model input size (pixels, before rounding to a multiple of 32).
CUSTOM_SIZE_LOW = 64
CUSTOM_SIZE_HIGH = 2048

LOADER_INPUTS = {
    "required": {
        "ckpt_name": ("CHECKPOINT_LIST", {"tooltip": "Checkpoint in the models/ddcolor folder; the variant (large/tiny) is read from its keys."}),
        "precision": (PRECISION_CHOICES, {"default": "auto", "tooltip": "auto = bf16 where ComfyUI recommends it for the device, else fp32."}),
        "device": (DEVICE_CHOICES, {"default": "auto", "tooltip": "auto = ComfyUI's compute device; gpu fails clearly when ComfyUI runs on the CPU."}),
    }
}

COLORIZE_INPUTS = {
    "required": {
        "model": ("DDCOLOR_MODEL",),
        "image": ("IMAGE",),
        "preset": (PRESET_CHOICES, {"default": "person", "tooltip": "Model input size: person 512 (460-680), building 1024 (960-1280), custom = the size input."}),
        "size": ("INT", {"default": 0, "min": 0, "max": CUSTOM_SIZE_HIGH, "step": 1,
                         "tooltip": "Model input size in pixels; 0 = the preset's default. Rounded to a multiple of 32."}),
        "keep_aspect": ("BOOLEAN", {"default": False, "tooltip": "Run the model on an input with the image's aspect ratio (long side = size) instead of squashing it to a square."}),
        "ab_upsample": (AB_UPSAMPLE_CHOICES, {"default": "nearest", "tooltip": "How the predicted colour is scaled back to full size (nearest = the official pipeline)."}),
        "clamp_ab": ("BOOLEAN", {"default": False, "tooltip": "Clamp the predicted a/b to [-128, 127]."}),
        "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "0 = the input's own colour (gray for a black-and-white photo), 1 = the predicted colour."}),
    },
    "optional": {
        "mask": ("MASK", {"tooltip": "Passed through unchanged to the MASK output (same size as the image)."}),
    },
}
COLORIZE_OUTPUTS = (("IMAGE", "image"), ("MASK", "mask"))

DOWNLOAD_INPUTS = {
    "required": {
        "release": (tuple(RELEASES), {"default": "ddcolor_paper_tiny.pth", "tooltip": "Official DDColor release to fetch into models/ddcolor."}),
    }
}
DOWNLOAD_OUTPUTS = (("STRING", "ckpt_name"),)


def with_choices(spec, placeholder, choices):
    """Copy of `spec` with every input typed `placeholder` given the concrete list `choices`."""
    out = {}
    for section, inputs in spec.items():
        out[section] = {
            name: ((list(choices),) + tuple(decl[1:])) if decl[0] == placeholder else decl
            for name, decl in inputs.items()
        }
    return out
