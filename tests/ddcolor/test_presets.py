import pytest

from ddcolor_model import PRESETS, SizePreset, round_size


def test_presets():
    assert PRESETS["person"] == SizePreset(default=512, low=460, high=680)
    assert PRESETS["building"] == SizePreset(default=1024, low=960, high=1280)
    assert PRESETS["person"].check(600, "person") == 600
    with pytest.raises(ValueError, match="outside the 'building' preset's range 960-1280"):
        PRESETS["building"].check(900, "building")


@pytest.mark.parametrize("size,expected", [(512, 512), (500, 512), (464, 480), (1000, 992),
                                           (10, 32), (1280, 1280)])
def test_round_size(size, expected):
    rounded, note = round_size(size)
    assert rounded == expected
    assert (note is None) == (size == expected)
    if note:
        assert str(size) in note and str(expected) in note


def test_round_size_rejects_nonpositive():
    with pytest.raises(ValueError, match="positive"):
        round_size(0)
