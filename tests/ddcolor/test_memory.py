"""estimate_peak_bytes: shape of the model, and never below a real CPU measurement."""
import os
import subprocess
import sys

import pytest
import torch

from ddcolor_model import estimate_peak_bytes
from ddcolor_model.memory import PARAMETER_COUNT

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_grows_with_size_and_batch():
    assert estimate_peak_bytes("tiny", 512, 1) < estimate_peak_bytes("tiny", 1024, 1)
    assert estimate_peak_bytes("tiny", 512, 1) < estimate_peak_bytes("tiny", 512, 2)
    assert estimate_peak_bytes("tiny", 512) < estimate_peak_bytes("large", 512)
    # activations scale with pixels: doubling the side ~ quadruples the activation part
    a = estimate_peak_bytes("tiny", 512) - estimate_peak_bytes("tiny", 256)
    b = estimate_peak_bytes("tiny", 1024) - estimate_peak_bytes("tiny", 512)
    assert b == pytest.approx(4 * a, rel=1e-6)


def test_half_precision_halves_the_variable_part():
    fixed = estimate_peak_bytes("large", 32, 1, torch.float32)
    full = estimate_peak_bytes("large", 1024, 2, torch.float32)
    half = estimate_peak_bytes("large", 1024, 2, torch.bfloat16)
    assert half < full
    assert estimate_peak_bytes("large", 1024, 2, torch.float16) == half
    assert half - estimate_peak_bytes("large", 32, 1, torch.bfloat16) == pytest.approx(
        (full - fixed) / 2, rel=1e-3)


def test_includes_the_weights():
    assert estimate_peak_bytes("large", 32) > PARAMETER_COUNT["large"] * 4
    assert estimate_peak_bytes("tiny", 32, dtype=torch.float16) > PARAMETER_COUNT["tiny"] * 2


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown DDColor variant"):
        estimate_peak_bytes("medium", 512)
    with pytest.raises(ValueError, match="positive"):
        estimate_peak_bytes("tiny", 512, 0)


@pytest.mark.parametrize("variant,size", [("tiny", 512), ("tiny", 1024), ("tiny", 1280),
                                          ("large", 512), ("large", 1024), ("large", 1280)])
def test_not_below_measured_cpu_peak(variant, size):
    sys.path.insert(0, os.path.join(REPO_ROOT, "bench"))
    try:
        from measure_peak_memory import measure
    finally:
        sys.path.pop(0)
    m = measure(variant, size, 1)
    measured = m["param_bytes"] + m["activation_bytes"]
    assert m["activation_bytes"] > 50e6  # the measurement saw the forward
    estimate = estimate_peak_bytes(variant, size, 1)
    # The guard's fast lane relies on it: high, never low, and by no more than 1.5x.
    assert measured <= estimate <= 1.5 * measured


def test_images_per_chunk_follows_free_memory():
    from ddcolor_model.memory import device_bytes_per_image, images_per_chunk
    per_image = device_bytes_per_image("tiny", 512, 1080, 1920)
    assert per_image > 1080 * 1920 * 8 * 4  # the full-resolution buffers count
    roomy = images_per_chunk("tiny", 512, 1080, 1920, 64, 40 * per_image)
    assert 30 <= roomy < 40  # the fixed workspace comes first
    assert images_per_chunk("tiny", 512, 1080, 1920, 8, 40 * per_image) == 8  # never more than the batch
    assert images_per_chunk("tiny", 512, 1080, 1920, 8, 0) == 1  # always at least one
    # bigger images or model sizes fit fewer per chunk
    assert images_per_chunk("tiny", 512, 4320, 7680, 64, 40 * per_image) < roomy
    assert images_per_chunk("large", 1024, 1080, 1920, 64, 40 * per_image) < roomy
    # half precision halves the forward's share
    assert images_per_chunk("tiny", 1024, 64, 64, 64, 40 * per_image, torch.bfloat16) > \
        images_per_chunk("tiny", 1024, 64, 64, 64, 40 * per_image)
