"""Our module's state-dict layout equals the official one, key by key (name, shape, dtype, order)."""
import pytest

from ddcolor_model import DDColor


@pytest.mark.parametrize("variant", ["tiny", "large"])
def test_state_dict_layout_matches_official(variant, keys_layout):
    layout = keys_layout(variant)
    ours = [[k, list(t.shape), str(t.dtype).replace("torch.", "")]
            for k, t in DDColor(variant).state_dict().items()]
    assert len(ours) == layout["num_keys"]
    assert sum(t.numel() for t in DDColor(variant).state_dict().values()) == layout["numel"]
    expected = layout["keys"]
    mismatches = [(a, b) for a, b in zip(ours, expected) if a != b]
    assert not mismatches, f"first mismatches (ours, official): {mismatches[:5]}"
    assert ours == expected


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="unknown DDColor variant 'small'"):
        DDColor("small")


def test_input_size_must_be_multiple_of_32():
    model = DDColor("tiny").eval()
    import torch
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 100, 96))
