"""The torch pipeline (the GPU path), run on the CPU against the OpenCV one and the kit."""
import cv2
import numpy as np
import pytest
import torch

from ddcolor_model import ColorizeOptions, colorize
from ddcolor_model import pipeline, torch_lab, torch_pipeline


def _random_rgb(shape, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.random(shape, dtype=np.float32)
    rgb[:8] = np.round(rgb[:8] * 255) / 255          # 8-bit levels, as decoded photos have
    rgb[8:16] *= 0.03                                 # dark values: the linear part of the curves
    rgb[16, :, :] = [0.0, 0.5, 1.0]                  # grid points and the clip limits
    rgb[17, :4] = [[-0.2, 0.3, 1.4], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    return rgb


def test_rgb_to_lab_equals_opencv_float32():
    rgb = _random_rgb((300, 400, 3))
    expected = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    ours = torch_lab.rgb_to_lab(torch.from_numpy(rgb)).numpy()
    # Integer table interpolation, as OpenCV: the same values, not just close ones.
    np.testing.assert_array_equal(ours, expected)
    lightness = torch_lab.rgb_to_lab(torch.from_numpy(rgb), (0,)).numpy()
    np.testing.assert_array_equal(lightness[..., 0], expected[..., 0])


def test_lab_to_rgb_equals_opencv_float32():
    rng = np.random.default_rng(1)
    lab = np.stack([rng.random((300, 400), dtype=np.float32) * 100,
                    rng.random((300, 400), dtype=np.float32) * 260 - 130,
                    rng.random((300, 400), dtype=np.float32) * 260 - 130], axis=-1)
    lab[0, :, 0] = 8.0          # the L threshold of the two branches
    expected = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    ours = torch_lab.lab_to_rgb(torch.from_numpy(lab)).numpy()
    assert np.abs(ours - expected).max() < 2e-5


def test_torch_lab_gives_the_official_model_input(golden, sample_rgb):
    """On cv2's resize, the torch Lab gives the kit's model_in within its 1e-4 tolerance."""
    for name, size in (("tiny_s256.npz", 256), ("tiny_s512.npz", 512)):
        ref = golden(name)["model_in"]
        resized = torch.from_numpy(cv2.resize(sample_rgb[0].numpy(), (size, size),
                                              interpolation=cv2.INTER_LINEAR))
        ours = torch_lab.gray_rgb(torch_lab.rgb_to_lab(resized, (0,))[..., 0]).permute(2, 0, 1)[None]
        assert np.abs(ours.numpy() - ref).max() <= 1e-4


def test_torch_model_input_matches_the_official(golden, sample_rgb):
    """The whole torch preprocessing (F.interpolate, then the torch Lab) against the kit.

    F.interpolate differs from cv2.resize by up to 1.2e-7, which can move a value across one
    of the 1/512 steps at which OpenCV's Lab table interpolation rounds the position: a few
    pixels (3 of 262,144 at S=512) then get a 1.4e-3 different gray level. Measured here.
    """
    ref = golden("tiny_s256.npz")["model_in"]
    ours = torch_pipeline.gray_model_input(sample_rgb, 256, 256).numpy()
    assert ours.shape == ref.shape and np.abs(ours - ref).max() <= 1e-4
    ref = golden("tiny_s512.npz")["model_in"]
    off = np.abs(torch_pipeline.gray_model_input(sample_rgb, 512, 512).numpy() - ref).max(axis=1)
    assert (off > 1e-4).mean() <= 2e-5 and off.max() <= 2e-3


def test_gray_model_input_equals_opencv_path_on_a_big_image():
    rgb = cv2.GaussianBlur(_random_rgb((1080, 1920, 3), seed=2), (9, 9), 0)[None]
    ours = torch_pipeline.gray_model_input(torch.from_numpy(rgb), 512, 512).numpy()
    expected = pipeline.gray_model_input(rgb, 512, 512).numpy()
    off = np.abs(ours - expected).max(axis=1)
    assert (off > 1e-4).mean() <= 1e-4 and off.max() <= 2e-3


@pytest.mark.parametrize("options", [
    ColorizeOptions(),
    ColorizeOptions(strength=0.5, clamp_ab=True, ab_upsample="bilinear"),
    ColorizeOptions(strength=0.0),
    ColorizeOptions(keep_aspect=True),
], ids=["official", "blend-clamp-bilinear", "strength0", "keep-aspect"])
def test_torch_backend_equals_opencv_backend(any_tiny_model, asset_rgb, options):
    image = torch.cat([asset_rgb, asset_rgb.flip(2)])
    ours = colorize(any_tiny_model, image, 96, options, backend="torch")
    expected = colorize(any_tiny_model, image, 96, options, backend="opencv")
    assert ours.shape == expected.shape and ours.dtype == expected.dtype
    # The kit's PNG tolerance: the few preprocessing steps noted above move some colours.
    off = ((ours - expected).abs() * 255).round().amax(dim=-1)
    assert (off > 1).float().mean() <= 1e-3 and (off >= 1).float().mean() <= 1e-2
    assert ((ours - expected).abs() < 1e-4).float().mean() > 0.99


def test_torch_backend_bands_cover_the_image(any_tiny_model, asset_rgb, monkeypatch):
    """Full-resolution steps in many small bands give the result of one band."""
    whole = colorize(any_tiny_model, asset_rgb, 64, backend="torch")
    monkeypatch.setattr(torch_pipeline, "BAND_PIXELS", 7 * asset_rgb.shape[2])
    banded = colorize(any_tiny_model, asset_rgb, 64, backend="torch")
    assert torch.equal(whole, banded)


def test_pipeline_png_parity_with_torch_backend(tiny_model, golden, sample_rgb):
    ours = (colorize(tiny_model, sample_rgb, 512, backend="torch")[0].numpy() * 255.0).round()
    ref = golden("tiny_s512_pipeline.png").astype(np.int16)
    off = np.abs(ours.astype(np.int16) - ref).max(axis=-1)
    assert (off > 1).mean() <= 1e-3 and (off >= 1).mean() <= 1e-2


def test_default_backend_follows_the_model_device(asset_rgb, monkeypatch):
    used = []
    monkeypatch.setattr(pipeline, "colorize_tensors",
                        lambda *a, **k: used.append("torch") or torch.zeros(1, 1, 1, 3))
    monkeypatch.setattr(pipeline, "_colorize_arrays",
                        lambda *a, **k: used.append("opencv") or np.zeros((1, 1, 1, 3), np.float32))
    model = torch.nn.Conv2d(3, 2, 1)
    colorize(model, asset_rgb, 64)
    assert used == ["opencv"]  # a CPU model: OpenCV, which measures faster there
    with torch.device("meta"):  # any other device (a GPU): torch, on that device
        elsewhere = torch.nn.Conv2d(3, 2, 1)
    colorize(elsewhere, asset_rgb, 64)
    assert used == ["opencv", "torch"]
    with pytest.raises(ValueError, match="backend must be one of"):
        colorize(model, asset_rgb, 64, backend="cuda")
