"""Numerical parity with the official implementation on the kit's golden outputs."""
import numpy as np
import pytest
import torch

from ddcolor_model import colorize

AB_MAX, AB_MEAN = 1e-3, 1e-4           # kit tolerances for the raw model output
PNG_GT1, PNG_GE1 = 1e-3, 1e-2          # fractions of pixels >1 level off / off at all


def _model_ab(model, golden_npz):
    with torch.inference_mode():
        return model(torch.from_numpy(golden_npz["model_in"])).numpy()


@pytest.mark.parametrize("variant,size", [("tiny", 256), ("tiny", 512), ("large", 256)])
def test_model_parity(variant, size, request, golden):
    model = request.getfixturevalue(f"{variant}_model")
    ref = golden(f"{variant}_s{size}.npz")
    diff = np.abs(_model_ab(model, ref) - ref["ab"])
    assert diff.max() <= AB_MAX, f"max |dab| {diff.max():.3g}"
    assert diff.mean() <= AB_MEAN, f"mean |dab| {diff.mean():.3g}"


@pytest.mark.parametrize("variant,size", [("tiny", 512), ("large", 256)])
def test_pipeline_parity(variant, size, request, golden, sample_rgb):
    model = request.getfixturevalue(f"{variant}_model")
    ours = (colorize(model, sample_rgb, size)[0].numpy() * 255.0).round().astype(np.int16)
    ref = golden(f"{variant}_s{size}_pipeline.png").astype(np.int16)
    assert ours.shape == ref.shape
    off = np.abs(ours - ref).max(axis=-1)
    assert (off > 1).mean() <= PNG_GT1, f"{(off > 1).mean():.4%} of pixels more than 1 level off"
    assert (off >= 1).mean() <= PNG_GE1, f"{(off >= 1).mean():.4%} of pixels off"


def test_preprocessing_matches_official(tiny_model, golden, sample_rgb):
    """The gray RGB model input equals the official one within cv2 float32 noise."""
    from ddcolor_model.pipeline import gray_model_input
    ref = golden("tiny_s256.npz")["model_in"]
    ours = gray_model_input(sample_rgb[..., :3].numpy(), 256, 256).numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-4
