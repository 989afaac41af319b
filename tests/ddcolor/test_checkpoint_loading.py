"""Released checkpoint formats load strictly and are recognised by their keys."""
import pytest
import torch

from ddcolor_model import CheckpointError, detect_variant, load_model, load_state_dict_file

HEAD_CLS_WIDTH = {"tiny": 768, "large": 1536}

# (container, add head_cls, key prefix): the released .pth is {'params': sd} with head_cls;
# the Hugging Face pytorch_model.bin files are raw; wrappers add module./model. prefixes.
FORMATS = {
    "tiny": [("params", False, ""), ("params", True, ""), ("raw", False, "module."),
             ("raw", True, ""), ("params", True, "model.")],
    "large": [("params", True, ""), ("raw", False, "module.")],
}
CASES = [(v, *fmt) for v, fmts in FORMATS.items() for fmt in fmts]


def _write(tmp_path, state_dict, variant, container, head_cls, prefix):
    sd = dict(state_dict)
    if head_cls:
        sd["encoder.arch.head_cls.weight"] = torch.zeros(4, HEAD_CLS_WIDTH[variant])
        sd["encoder.arch.head_cls.bias"] = torch.zeros(4)
    sd = {prefix + k: v for k, v in sd.items()}
    path = tmp_path / f"{variant}_{container}_{int(head_cls)}_{prefix or 'noprefix'}.pth"
    torch.save({"params": sd} if container == "params" else sd, path)
    return path


@pytest.mark.parametrize("variant,container,head_cls,prefix", CASES)
def test_released_formats_load_strict(variant, container, head_cls, prefix, request, tmp_path):
    reference = request.getfixturevalue(f"{variant}_state_dict")
    path = _write(tmp_path, reference, variant, container, head_cls, prefix)

    state_dict, detected = load_state_dict_file(path)
    assert detected == variant
    assert list(state_dict) == list(reference)  # prefixes stripped, head_cls dropped, nothing else

    model = load_model(path)
    assert model.variant == variant and not model.training and model.synthetic is False
    loaded = model.state_dict()
    for key in ("encoder.arch.stages.0.0.gamma", "decoder.color_decoder.query_feat.weight",
                "refine_net.0.0.weight_orig"):
        assert torch.equal(loaded[key], reference[key])


def test_variant_from_keys_not_file_name(tiny_state_dict, tmp_path):
    path = tmp_path / "ddcolor_paper.pth"  # a large release's name, tiny contents
    torch.save({"params": tiny_state_dict}, path)
    assert load_state_dict_file(path)[1] == "tiny"
    assert detect_variant(tiny_state_dict) == "tiny"


def test_only_head_cls_is_dropped(tiny_state_dict):
    from ddcolor_model.checkpoint import normalise_keys
    sd = {"module." + k: v for k, v in tiny_state_dict.items()}
    sd["module.encoder.arch.head_cls.weight"] = torch.zeros(4, 768)
    sd["module.encoder.arch.head.weight"] = torch.zeros(4, 768)  # not head_cls: kept
    keys = set(normalise_keys(sd))
    assert "encoder.arch.head.weight" in keys
    assert "encoder.arch.head_cls.weight" not in keys
    assert len(keys) == len(tiny_state_dict) + 1


def test_load_model_dtype_and_spectral_weight(tiny_state_dict, tmp_path):
    path = tmp_path / "t.pth"
    torch.save(tiny_state_dict, path)
    model = load_model(path, dtype=torch.bfloat16)
    conv = model.refine_net[0][0]
    assert conv.weight.dtype == torch.bfloat16
    w = tiny_state_dict["refine_net.0.0.weight_orig"]
    u, v = tiny_state_dict["refine_net.0.0.weight_u"], tiny_state_dict["refine_net.0.0.weight_v"]
    expected = w / torch.dot(u, w.reshape(w.shape[0], -1) @ v)
    torch.testing.assert_close(conv.weight.float(), expected, rtol=1e-2, atol=1e-3)
    assert "refine_net.0.0.weight" not in model.state_dict()  # derived, never saved


def test_loaded_model_computes_like_the_reference_build(tiny_state_dict, tiny_model, tmp_path):
    """load_model (built on the meta device, tensors assigned) gives the same forward."""
    path = tmp_path / "t.pth"
    torch.save({"params": tiny_state_dict}, path)
    model = load_model(path)
    assert all(t.device.type == "cpu" for t in list(model.parameters()) + list(model.buffers()))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(model(x), tiny_model(x))
