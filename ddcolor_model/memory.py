"""Peak-memory estimate of one DDColor forward, for the VRAM guard's fast lane.

Model: weights + activations + a fixed workspace.
- Weights: parameter count x element size (55.1 M numbers tiny, 227.9 M large).
- Activations: a fixed part per variant plus a part per model-input pixel per image. Nothing
  grows as S^2 x 4096 (fused, banded colour head; banded ConvNeXt MLP), no pixels x 256 memory,
  key or value map is stored (banded cross-attention), and the last up-block never holds the
  concatenation; the peak is the last up-block (its upsampled map and conv output at stride 4
  next to its inputs) or, for ConvNeXt-L, the first encoder stage. Measured on the CPU
  (bench/measure_peak_memory.py: growth of the peak resident set during one fp32 forward after
  a small warm-up forward, fresh process per case, 2-core machine): about 65 values per pixel
  per image, above floors of about 60 MB (tiny) and 100 MB (large) (allocator and oneDNN scratch, the
  stride-32/16 maps). Constants from tiny and large at 512, 1024 and 1280, batch 1 and 2.
- A safety factor of 1.15 on activations and 64 MiB of workspace: the estimate is 1.1-1.4x the
  CPU measurement over those cases (docs/ddcolor.md). The guard's fast lane relies on it erring
  high, never low, and by no more than 1.5x; GPU allocator rounding and convolution workspaces
  are not measured yet (bench/gpu_evidence.py measures them; no GPU has run it so far).
"""
import torch

PARAMETER_COUNT = {"tiny": 55_051_016, "large": 227_921_864}
FIXED_ACTIVATION_VALUES = {"tiny": 15_000_000, "large": 25_000_000}
ACTIVATION_VALUES_PER_PIXEL = 65
ACTIVATION_SAFETY = 1.15
WORKSPACE_BYTES = 64 * 2 ** 20


def estimate_peak_bytes(variant, size, batch=1, dtype=torch.float32):
    """Bytes a forward of ``batch`` images at model size ``size`` needs, weights included."""
    if variant not in PARAMETER_COUNT:
        raise ValueError(f"unknown DDColor variant {variant!r}: use 'large' or 'tiny'")
    if int(size) <= 0 or int(batch) <= 0:
        raise ValueError(f"size and batch must be positive, got size={size}, batch={batch}")
    item = torch.empty(0, dtype=dtype).element_size()
    pixels = int(size) * int(size) * int(batch)
    values = FIXED_ACTIVATION_VALUES[variant] + ACTIVATION_VALUES_PER_PIXEL * pixels
    return int(PARAMETER_COUNT[variant] * item + values * item * ACTIVATION_SAFETY + WORKSPACE_BYTES)


# The torch pipeline (GPU path) holds per image on the device: the RGB input and output and the
# upsampled ab at full resolution (3 + 3 + 2 float32 values per pixel), plus one band of its
# full-resolution intermediates (torch_pipeline.BAND_PIXELS pixels, about 48 bytes each).
PIPELINE_BYTES_PER_PIXEL = (3 + 3 + 2) * 4
BAND_BYTES = 48 * 2 * 2 ** 20


def device_bytes_per_image(variant, size, height, width, dtype=torch.float32):
    """Device bytes one more image of a chunk adds: forward activations + pipeline buffers."""
    one = estimate_peak_bytes(variant, size, 1, dtype)
    two = estimate_peak_bytes(variant, size, 2, dtype)
    return (two - one) + height * width * PIPELINE_BYTES_PER_PIXEL


def images_per_chunk(variant, size, height, width, batch, free_bytes, dtype=torch.float32):
    """How many images of a batch to run at once so that a chunk fits in ``free_bytes``
    (device memory free with the weights already loaded); at least 1, at most ``batch``."""
    fixed = WORKSPACE_BYTES + BAND_BYTES
    per_image = device_bytes_per_image(variant, size, height, width, dtype)
    return max(1, min(int(batch), int((free_bytes - fixed) // per_image)))
