"""The colorize node's input checks: each bad input fails with a message naming the problem and the fix."""
import pytest
import torch

from ddcolor_model import PRESETS
from nodes.image_checks import InputError, check_image, check_mask, check_merge_memory, model_size


def image(b=1, h=32, w=48, c=3):
    return torch.rand(b, h, w, c)


def test_rgb_and_rgba_batches_pass():
    check_image(image(c=3))
    check_image(image(b=4, c=4))


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_wrong_channel_count(channels):
    with pytest.raises(InputError, match=f"has {channels} channel.*RGB \\(3\\) or RGBA \\(4\\).*Convert"):
        check_image(image(c=channels))


@pytest.mark.parametrize("h, w", [(1, 1), (7, 100), (100, 3)])
def test_too_small(h, w):
    with pytest.raises(InputError, match=f"{w}x{h} px.*at least 8x8.*upscale"):
        check_image(image(h=h, w=w))


def test_not_a_batch_and_integer_pixels():
    with pytest.raises(InputError, match=r"\(batch, height, width, channels\), got \(32, 48, 3\)"):
        check_image(torch.rand(32, 48, 3))
    with pytest.raises(InputError, match="dtype torch.uint8"):
        check_image(torch.zeros(1, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(InputError, match="empty"):
        check_image(torch.rand(0, 32, 32, 3))


def test_mask_must_cover_the_image():
    check_mask(None, image())
    check_mask(torch.rand(1, 32, 48), image(b=3))
    check_mask(torch.rand(32, 48), image())
    with pytest.raises(InputError, match="mask is \\(1, 16, 48\\).*same height and width"):
        check_mask(torch.rand(1, 16, 48), image())
    with pytest.raises(InputError, match="batch 1 or the same batch"):
        check_mask(torch.rand(2, 32, 48), image(b=3))


def test_preset_sizes():
    assert model_size("person", 0, PRESETS, 64, 2048) == 512
    assert model_size("building", 0, PRESETS, 64, 2048) == 1024
    assert model_size("person", 460, PRESETS, 64, 2048) == 460
    assert model_size("building", 1280, PRESETS, 64, 2048) == 1280
    assert model_size("custom", 256, PRESETS, 64, 2048) == 256


@pytest.mark.parametrize("preset, size, message", [
    ("person", 459, "size 459 is outside the person preset's range 460-680"),
    ("person", 1024, "size 1024 is outside the person preset's range 460-680"),
    ("building", 512, "size 512 is outside the building preset's range 960-1280"),
    ("custom", 0, "preset 'custom' needs a size between 64 and 2048"),
    ("custom", 4096, "preset 'custom' needs a size between 64 and 2048"),
    ("portrait", 0, "unknown preset 'portrait'"),
])
def test_sizes_out_of_range(preset, size, message):
    with pytest.raises(InputError, match=message):
        model_size(preset, size, PRESETS, 64, 2048)


def test_merge_memory():
    check_merge_memory(4320, 7680, 8 * 2**30)  # 8K fits in 8 GiB
    with pytest.raises(InputError, match=r"7680x4320 image needs about 2.0 GiB.*only 1.0 GiB.*Downscale"):
        check_merge_memory(4320, 7680, 2**30)
