"""pad_blur_ gives the numbers of the official replicate pad + nn.AvgPool2d(2, stride=1)."""
import torch
import torch.nn.functional as F

from ddcolor_model.pixel_decoder import pad_blur_


def _official(x):
    return torch.nn.AvgPool2d(2, stride=1)(F.pad(x, (1, 0, 1, 0), mode="replicate"))


def test_pad_blur_equals_replicate_pad_then_avg_pool_2x2_stride_1():
    x = torch.randn(2, 5, 17, 23, generator=torch.Generator().manual_seed(0))
    expected = _official(x)
    got = pad_blur_(x.clone())
    assert got.shape == expected.shape == (2, 5, 17, 23)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_pad_blur_works_in_channels_last_and_writes_over_its_input():
    x = torch.randn(1, 8, 9, 11, generator=torch.Generator().manual_seed(1))
    expected = _official(x)
    y = x.contiguous(memory_format=torch.channels_last)
    got = pad_blur_(y)
    assert got.data_ptr() == y.data_ptr()  # no new full-size map: the input is the output
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_pad_blur_keeps_half_precision():
    x = torch.rand(1, 3, 8, 8, dtype=torch.bfloat16)
    assert pad_blur_(x).dtype == torch.bfloat16
