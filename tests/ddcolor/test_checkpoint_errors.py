"""Bad checkpoints are rejected with messages that name the file, the problem and the fix."""
import pickle

import pytest
import torch

from ddcolor_model import CheckpointError, detect_variant, load_model, load_state_dict_file

RELEASES_HINT = "piddnad/DDColor-models"


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory, tiny_state_dict):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"params": tiny_state_dict}, path)
    return path


def test_truncated_file(tiny_file, tmp_path):
    path = tmp_path / "ddcolor_paper_tiny.pth"
    data = tiny_file.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    msg = str(info.value)
    assert str(path) in msg and "truncated or corrupt" in msg
    assert f"{len(data) // 3:,} bytes" in msg
    assert "expected about 220.0 MB for ddcolor_paper_tiny.pth" in msg
    assert "Re-download" in msg and RELEASES_HINT in msg


def test_corrupt_file(tmp_path):
    path = tmp_path / "mystery.pth"
    path.write_bytes(b"this is not a checkpoint at all\n" * 100)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path)
    msg = str(info.value)
    assert str(path) in msg and "truncated or corrupt" in msg and "3,200 bytes" in msg
    assert "912.0 MB (large)" in msg and "220.0 MB (tiny)" in msg


def test_random_bytes(tmp_path):
    path = tmp_path / "ddcolor_artistic.pth"
    noise = torch.randint(0, 256, (5000,), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(1))
    path.write_bytes(noise.numpy().tobytes())
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path)
    msg = str(info.value)
    assert "truncated or corrupt" in msg and "expected about 912.0 MB for ddcolor_artistic.pth" in msg
    assert "weights_only" not in msg


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_state_dict_file(path)


def test_missing_file_says_where_to_get_weights(tmp_path):
    with pytest.raises(CheckpointError, match="no such file") as info:
        load_model(tmp_path / "nope.pth")
    assert "ddcolor_paper_tiny.pth" in str(info.value) and "models/ddcolor" in str(info.value)


def test_pickled_objects_are_not_executed(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"params": {"x": _Unpicklable()}}, f, protocol=2)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_state_dict_file(path)


class _Unpicklable:
    pass


@pytest.mark.parametrize("keys,looks_like", [
    (["model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.x"], "Stable Diffusion"),
    (["conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "upconv1.weight"], "ESRGAN"),
    (["conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight"], "ESRGAN"),
    (["alpha.weight", "beta.bias"], "e.g. alpha.weight, beta.bias"),
])
def test_foreign_state_dict(keys, looks_like, tmp_path):
    path = tmp_path / "other.safetensors.pth"
    torch.save({k: torch.zeros(2) for k in keys}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    msg = str(info.value)
    assert str(path) in msg and "not a DDColor checkpoint" in msg
    assert looks_like in msg and "refine_net.0.0.weight_orig" in msg  # what was expected


def test_missing_keys_are_listed(tiny_state_dict, tmp_path):
    sd = dict(tiny_state_dict)
    removed = [k for k in sd if k.startswith("decoder.color_decoder.transformer_ffn_layers.")]
    for k in removed:
        del sd[k]
    path = tmp_path / "missing.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    msg = str(info.value)
    assert f"{len(removed)} key(s) missing" in msg and removed[0] in msg
    assert f"and {len(removed) - 8} more" in msg  # capped listing
    assert "DDColor-tiny" in msg


def test_unexpected_and_misshaped_keys_are_listed(tiny_state_dict, tmp_path):
    sd = dict(tiny_state_dict)
    sd["decoder.extra_layer.weight"] = torch.zeros(3)
    sd["decoder.color_decoder.query_feat.weight"] = torch.zeros(50, 256)
    path = tmp_path / "extra.pth"
    torch.save({"params": sd}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    msg = str(info.value)
    assert "1 key(s) unexpected: decoder.extra_layer.weight" in msg
    assert "decoder.color_decoder.query_feat.weight (50, 256) (expected (100, 256))" in msg


def test_unsupported_encoder_width(tiny_state_dict):
    sd = dict(tiny_state_dict)
    sd["encoder.arch.downsample_layers.0.0.weight"] = torch.zeros(128, 3, 4, 4)
    with pytest.raises(CheckpointError, match="128 channels"):
        detect_variant(sd)


def test_not_a_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        load_state_dict_file(path)


def test_checkpoint_error_is_value_error():
    assert issubclass(CheckpointError, ValueError)
