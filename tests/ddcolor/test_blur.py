"""The separable 2x2 blur gives the numbers of the official nn.AvgPool2d(2, stride=1)."""
import torch

from ddcolor_model.pixel_decoder import Blur2x2


def test_blur_equals_avg_pool_2x2_stride_1():
    x = torch.randn(2, 5, 17, 23, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.AvgPool2d(2, stride=1)(x)
    got = Blur2x2()(x)
    assert got.shape == expected.shape == (2, 5, 16, 22)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_blur_keeps_half_precision():
    x = torch.rand(1, 3, 8, 8, dtype=torch.bfloat16)
    assert Blur2x2()(x).dtype == torch.bfloat16
