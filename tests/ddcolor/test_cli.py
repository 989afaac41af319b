"""The command line, end to end on temporary folders, with a synthetic checkpoint."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from ddcolor_model import cli, load_model
from ddcolor_model.synth import make_synthetic_state_dict

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def synth_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "demo_tiny.pth"
    assert cli.main(["synth", "tiny", str(path), "--seed", "0"]) == 0
    return path


@pytest.fixture()
def inputs(tmp_path):
    """A folder with an RGB photo, an RGBA PNG, a 16-bit gray PNG and a broken 'image'."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8), (7, 7), 0)
    cv2.imwrite(str(folder / "photo.jpg"), photo)
    rgba = np.dstack([photo[:30, :30], rng.integers(0, 256, (30, 30), dtype=np.uint8)])
    cv2.imwrite(str(folder / "with_alpha.png"), rgba)
    cv2.imwrite(str(folder / "gray16.png"), (photo[..., 0].astype(np.uint16) * 257))
    (folder / "broken.png").write_bytes(b"not really a png")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    return folder


def test_synth_checkpoint_is_labelled_deterministic_and_colourful(synth_checkpoint, sample_rgb):
    model = load_model(synth_checkpoint)
    assert model.synthetic is True and model.variant == "tiny"
    regenerated = make_synthetic_state_dict("tiny", seed=0)
    saved = model.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in regenerated.items())
    from ddcolor_model.pipeline import predict_ab
    ab = predict_ab(model, sample_rgb.numpy(), 128, 128)
    assert ab.std() > 5.0, "synthetic output should be visibly colourful"


def test_colorize_end_to_end(synth_checkpoint, inputs, tmp_path):
    out = tmp_path / "out"
    extra = tmp_path / "single.png"
    cv2.imwrite(str(extra), np.full((33, 47, 3), 128, np.uint8))
    cmd = [sys.executable, "-m", "ddcolor_model", "colorize", str(inputs), str(extra),
           str(tmp_path / "missing.png"), "-o", str(out), "--checkpoint", str(synth_checkpoint),
           "--size", "64", "--keep-aspect", "--strength", "0.8", "--clamp-ab",
           "--ab-upsample", "bilinear", "--dtype", "bf16", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr  # problems (broken file, missing path) -> exit 1
    assert "broken.png: not an image" in run.stderr
    assert "missing.png: no such file or folder" in run.stderr
    assert "SYNTHETIC" in run.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == ["gray16_SYNTHETIC.png", "photo_SYNTHETIC.png", "single_SYNTHETIC.png",
                       "with_alpha_SYNTHETIC.png"]
    photo = cv2.imread(str(out / "photo_SYNTHETIC.png"), cv2.IMREAD_UNCHANGED)
    assert photo.shape == (40, 70, 3)
    rgba_in = cv2.imread(str(inputs / "with_alpha.png"), cv2.IMREAD_UNCHANGED)
    rgba_out = cv2.imread(str(out / "with_alpha_SYNTHETIC.png"), cv2.IMREAD_UNCHANGED)
    assert rgba_out.shape == (30, 30, 4)
    assert np.array_equal(rgba_out[..., 3], rgba_in[..., 3])
    gray_out = cv2.imread(str(out / "gray16_SYNTHETIC.png"), cv2.IMREAD_UNCHANGED)
    assert gray_out.shape == (40, 70, 3) and np.ptp(gray_out.astype(int), axis=2).max() > 0


def test_real_checkpoint_outputs_are_not_labelled(tiny_state_dict, tmp_path, capsys):
    ckpt = tmp_path / "plain.pth"
    torch.save({"params": tiny_state_dict}, ckpt)
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), np.full((32, 32, 3), 90, np.uint8))
    assert cli.main(["colorize", str(src), "-o", str(tmp_path / "o"), "--checkpoint", str(ckpt),
                     "--size", "32"]) == 0
    assert os.listdir(tmp_path / "o") == ["a.png"]
    assert "SYNTHETIC" not in capsys.readouterr().err


def test_no_checkpoint_says_where_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DDCOLOR_CHECKPOINT", raising=False)
    monkeypatch.setattr(cli, "comfy_models_dir", lambda: tmp_path / "models" / "ddcolor")
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), np.zeros((8, 8, 3), np.uint8))
    assert cli.main(["colorize", str(src), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    for needle in ("no DDColor checkpoint", "piddnad/DDColor-models", "ddcolor_modelscope.pth",
                   "ddcolor_paper_tiny.pth", "--checkpoint", "DDCOLOR_CHECKPOINT", "models/ddcolor",
                   str(tmp_path / "models" / "ddcolor")):
        assert needle in err


def test_checkpoint_from_environment_and_models_folder(synth_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DDCOLOR_CHECKPOINT", str(synth_checkpoint))
    assert cli.find_checkpoint(None) == str(synth_checkpoint)
    monkeypatch.delenv("DDCOLOR_CHECKPOINT")
    models = tmp_path / "models" / "ddcolor"
    models.mkdir(parents=True)
    (models / "ddcolor_paper_tiny.pth").write_bytes(b"x")
    (models / "ddcolor_modelscope.pth").write_bytes(b"x")
    monkeypatch.setattr(cli, "comfy_models_dir", lambda: models)
    assert cli.find_checkpoint(None) == str(models / "ddcolor_modelscope.pth")


@pytest.mark.parametrize("preset,size,expected", [
    ("person", None, 512), ("building", None, 1024), ("person", 680, 672), (None, None, 512),
    (None, 300, 288), ("building", 1280, 1280),
])
def test_size_resolution(preset, size, expected):
    assert cli.resolve_size(preset, size) == expected


@pytest.mark.parametrize("args,message", [
    (["--preset", "person", "--size", "700"], "outside the 'person' preset's range 460-680"),
    (["--preset", "building", "--size", "512"], "range 960-1280"),
    (["--strength", "2"], "strength must be between 0 and 1"),
    (["--size", "0"], "positive"),
])
def test_bad_arguments(args, message, tmp_path, capsys):
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), np.zeros((8, 8, 3), np.uint8))
    assert cli.main(["colorize", str(src), "-o", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err


def test_progress_without_tqdm(monkeypatch, capsys):
    from ddcolor_model.progress import progress
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    assert list(progress(["a", "b", "c"], "colorize")) == ["a", "b", "c"]
    assert "colorize: 3/3" in capsys.readouterr().err
