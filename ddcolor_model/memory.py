"""Peak-memory estimate of one DDColor forward, for the VRAM guard's fast lane.

Model: weights + activations + a fixed workspace.
- Weights: parameter count x element size (55.1 M numbers tiny, 227.9 M large).
- Activations: a fixed part per variant plus a part per model-input pixel per image. With the
  fused, banded colour head and the banded ConvNeXt MLP no map grows as S^2 x 4096 any more;
  the peak is in the colour decoder's cross-attention on the stride-4 scale and the last
  up-block. Measured on the CPU (bench/measure_peak_memory.py: growth of the peak resident set
  during one fp32 forward, fresh process per case), 2-core machine: about 180 values per pixel
  per image (tiny at S=512: +190 MB for the second image of a batch) above a floor of about
  80 MB (tiny) and 250 MB (large) that small sizes show (allocator and oneDNN scratch, the
  stride-32/16 maps). Constants: tiny 256-1280 and large 256-1024, batch 1 and 2.
- A safety factor of 1.15 on activations and 64 MiB of workspace: the estimate is 1.1-1.45x the
  CPU measurement over those cases (two runs; docs/ddcolor.md). The guard's fast lane relies on it erring high, never low,
  and by no more than 1.5x; GPU allocator rounding and convolution workspaces are not measured
  yet (no GPU measurement so far).
"""
import torch

PARAMETER_COUNT = {"tiny": 55_051_016, "large": 227_921_864}
FIXED_ACTIVATION_VALUES = {"tiny": 20_000_000, "large": 62_500_000}
ACTIVATION_VALUES_PER_PIXEL = 180
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
