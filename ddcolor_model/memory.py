"""Peak-memory estimate of one DDColor forward, for the VRAM guard's fast lane.

Model: weights + activations + a fixed workspace.
- Weights: parameter count x element size (55.1 M numbers tiny, 227.9 M large).
- Activations: the peak is in the last x4 pixel-shuffle stage, where about three full-resolution
  256-channel maps are alive at once (conv output, shuffled copy, padded/blurred copy), i.e.
  ~768 values per model-input pixel per image, for both variants (the decoder is the same).
  Measured on CPU (bench/measure_peak_memory.py, ru_maxrss growth during one forward, fp32):
  715-760 values per pixel for tiny and large at S = 256 and 512, batch 1 and 2.
- A safety factor of 1.5 on activations and 256 MiB of workspace cover GPU allocator rounding
  and fragmentation and convolution workspaces, which the CPU measurement does not see.
The estimate is meant to err high (about 1.5-2x the CPU measurement), never grossly low.
"""
import torch

PARAMETER_COUNT = {"tiny": 55_051_016, "large": 227_921_864}
ACTIVATION_VALUES_PER_PIXEL = 768
ACTIVATION_SAFETY = 1.5
WORKSPACE_BYTES = 256 * 2 ** 20


def estimate_peak_bytes(variant, size, batch=1, dtype=torch.float32):
    """Bytes a forward of ``batch`` images at model size ``size`` needs, weights included."""
    if variant not in PARAMETER_COUNT:
        raise ValueError(f"unknown DDColor variant {variant!r}: use 'large' or 'tiny'")
    if int(size) <= 0 or int(batch) <= 0:
        raise ValueError(f"size and batch must be positive, got size={size}, batch={batch}")
    item = torch.empty(0, dtype=dtype).element_size()
    pixels = int(size) * int(size) * int(batch)
    activations = ACTIVATION_VALUES_PER_PIXEL * pixels * item * ACTIVATION_SAFETY
    return int(PARAMETER_COUNT[variant] * item + activations + WORKSPACE_BYTES)
