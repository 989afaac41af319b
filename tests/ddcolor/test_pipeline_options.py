"""Pipeline behaviour: options, alpha, batches, dtypes, validation, no retained features."""
import copy
import gc
import weakref

import numpy as np
import pytest
import torch
import torch.nn as nn

from ddcolor_model import ColorizeOptions, colorize
from ddcolor_model.lab import rgb_to_lab
from ddcolor_model.pipeline import model_input_size, predict_ab

SIZE = 64  # small model input keeps these tests fast; parity tests use the real sizes


class ConstantAB(nn.Module):
    """Stand-in model predicting the same (a, b) everywhere; records its input shapes."""

    def __init__(self, a, b):
        super().__init__()
        self.ab = nn.Parameter(torch.tensor([a, b], dtype=torch.float32), requires_grad=False)
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        return self.ab.view(1, 2, 1, 1).expand(x.shape[0], 2, x.shape[2], x.shape[3]).clone()


def _lab(rgb):
    return np.stack([rgb_to_lab(image) for image in rgb[..., :3].numpy()])


@pytest.fixture(scope="module")
def photo(asset_rgb):
    """The sample photo shrunk 4x (75x113, colour) and its gray version."""
    color = asset_rgb[:, ::4, ::4, :].contiguous()
    gray = color.mean(dim=-1, keepdim=True).expand_as(color).contiguous()
    return color, gray


def test_strength_zero_keeps_input_chroma(any_tiny_model, photo):
    color, _ = photo
    out = colorize(any_tiny_model, color, SIZE, ColorizeOptions(strength=0.0))
    # Only the float32 Lab round trip separates them: well under one 8-bit level.
    assert (out - color).abs().max() < 1 / 255


def test_strength_blends_linearly(photo):
    color, _ = photo
    model = ConstantAB(20.0, -10.0)
    lab_in = _lab(color)
    half = _lab(colorize(model, color, SIZE, ColorizeOptions(strength=0.5)))
    expected = 0.5 * lab_in[..., 1:] + 0.5 * np.array([20.0, -10.0], dtype=np.float32)
    # Compare where the result is inside the RGB gamut (Lab -> RGB clips the rest).
    inside = _inside_gamut(colorize(model, color, SIZE, ColorizeOptions(strength=0.5)))
    assert inside.mean() > 0.5
    # cv2's float32 Lab round trip alone moves ab by up to ~0.7 (L by ~0.25).
    assert np.abs(half[..., 1:] - expected)[inside].max() < 1.0


def _inside_gamut(rgb, margin=1e-3):
    rgb = rgb[..., :3].numpy()
    return ((rgb > margin) & (rgb < 1 - margin)).all(axis=-1)


def test_output_lightness_equals_input_lightness(any_tiny_model, photo):
    _, gray = photo
    out = colorize(any_tiny_model, gray, SIZE)
    inside = _inside_gamut(out)
    assert inside.mean() > 0.5
    assert np.abs(_lab(out)[..., 0] - _lab(gray)[..., 0])[inside].max() < 0.3
    assert np.abs(_lab(out)[..., 1:]).mean() > 1.0  # and it did add colour


def test_alpha_is_carried_through_bit_exact(any_tiny_model, photo):
    _, gray = photo
    alpha = torch.rand(gray.shape[:3] + (1,), generator=torch.Generator().manual_seed(3))
    rgba = torch.cat([gray, alpha], dim=-1)
    out = colorize(any_tiny_model, rgba, SIZE)
    assert out.shape == rgba.shape
    assert torch.equal(out[..., 3], rgba[..., 3])
    assert torch.allclose(out[..., :3], colorize(any_tiny_model, gray, SIZE), atol=1e-6)


def test_keep_aspect_model_input_and_output_size(photo):
    color, _ = photo  # 75 x 113
    model = ConstantAB(5.0, 5.0)
    out = colorize(model, color, 512, ColorizeOptions(keep_aspect=True))
    assert out.shape == color.shape
    assert model.seen == [(1, 3, 352, 512)]  # 75/113*512 = 339.8 -> 352 (multiple of 32)
    colorize(model, color, 512)
    assert model.seen[-1] == (1, 3, 512, 512)  # default: squash to a square


@pytest.mark.parametrize("h,w,size,expected", [
    (300, 451, 512, (352, 512)), (451, 300, 512, (512, 352)), (100, 100, 256, (256, 256)),
    (10, 1000, 256, (32, 256)), (1080, 1920, 1024, (576, 1024)),
])
def test_model_input_size(h, w, size, expected):
    assert model_input_size(h, w, size, keep_aspect=True) == expected
    assert model_input_size(h, w, size, keep_aspect=False) == (size, size)


def test_clamp_ab(photo):
    _, gray = photo
    clamped = colorize(ConstantAB(500.0, -400.0), gray, SIZE, ColorizeOptions(clamp_ab=True))
    limit = colorize(ConstantAB(127.0, -128.0), gray, SIZE)
    assert torch.equal(clamped, limit)
    unclamped = colorize(ConstantAB(500.0, -400.0), gray, SIZE)
    assert not torch.equal(unclamped, limit)


def test_bilinear_upsampling_is_smoother(any_tiny_model, photo):
    _, gray = photo
    nearest = _lab(colorize(any_tiny_model, gray, SIZE))[..., 1:]
    bilinear = _lab(colorize(any_tiny_model, gray, SIZE, ColorizeOptions(ab_upsample="bilinear")))[..., 1:]
    variation = lambda ab: np.abs(np.diff(ab, axis=1)).mean() + np.abs(np.diff(ab, axis=2)).mean()
    assert not np.array_equal(nearest, bilinear)
    assert variation(bilinear) < variation(nearest)
    assert np.abs(bilinear.mean() - nearest.mean()) < 1.0  # same colours overall


def test_batch_equals_one_by_one(any_tiny_model, photo):
    color, gray = photo
    batch = torch.cat([gray, color.flip(1)], dim=0)
    together = colorize(any_tiny_model, batch, SIZE)
    alone = torch.cat([colorize(any_tiny_model, batch[i:i + 1], SIZE) for i in range(2)])
    assert (together - alone).abs().max() < 1e-4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs_and_is_close(any_tiny_model, photo, dtype):
    _, gray = photo
    half_model = copy.deepcopy(any_tiny_model).to(dtype)
    image = gray[..., :3].numpy()
    reference = predict_ab(any_tiny_model, image, SIZE, SIZE)
    ab = predict_ab(half_model, image, SIZE, SIZE)
    assert ab.dtype == torch.float32 and torch.isfinite(ab).all()
    diff = (ab - reference).abs()
    assert diff.mean() < 0.05 * reference.abs().mean(), f"mean |dab| {diff.mean():.3f}"
    out = colorize(half_model, gray, SIZE)
    assert out.dtype == gray.dtype and out.shape == gray.shape


def test_no_features_are_retained_after_forward(any_tiny_model):
    captured = []
    hook = any_tiny_model.encoder.arch.norm3.register_forward_hook(
        lambda module, args, output: captured.append(weakref.ref(output)))
    try:
        with torch.inference_mode():
            out = any_tiny_model(torch.rand(1, 3, SIZE, SIZE))
    finally:
        hook.remove()
    del out
    gc.collect()
    assert len(captured) == 1 and captured[0]() is None, "encoder feature outlived the forward"
    for name, module in any_tiny_model.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name
        stray = [k for k, v in vars(module).items() if isinstance(v, torch.Tensor)]
        assert not stray, f"{name} keeps tensors as attributes: {stray}"


def test_output_layout_dtype_device(photo):
    color, _ = photo
    out = colorize(ConstantAB(0.0, 0.0), color.double(), SIZE)
    assert out.dtype == torch.float64 and out.device == color.device and out.shape == color.shape
    assert not out.requires_grad and 0.0 <= out.min() and out.max() <= 1.0
    assert not out.is_inference()  # usable outside inference mode, e.g. modified in place
    out.mul_(1.0)


def test_size_is_rounded_with_a_warning(photo):
    color, _ = photo
    model = ConstantAB(0.0, 0.0)
    with pytest.warns(UserWarning, match="not a multiple of 32; using 96"):
        colorize(model, color, 100)
    assert model.seen == [(1, 3, 96, 96)]


@pytest.mark.parametrize("bad,message", [
    (np.zeros((1, 8, 8, 3), np.float32), "expects a torch tensor"),
    (torch.zeros(8, 8, 3), r"\(B, H, W, 3\)"),
    (torch.zeros(1, 8, 8, 2), "got shape"),
    (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), "divide 8-bit images by 255"),
    (torch.zeros(0, 8, 8, 3), "empty image batch"),
])
def test_bad_images_are_rejected(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        colorize(ConstantAB(0.0, 0.0), bad, SIZE)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="ab_upsample must be one of"):
        ColorizeOptions(ab_upsample="bicubic")
    with pytest.raises(ValueError, match="strength must be between 0 and 1"):
        ColorizeOptions(strength=1.5)
