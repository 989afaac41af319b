"""Shared fixtures for the DDColor core tests.

The parity kit lives in ../shared/ddcolor relative to the repository root; tests that need it
skip with a clear reason when it is absent. Synthetic weights are generated once per session.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
KIT_DIR = (REPO_ROOT / ".." / "shared" / "ddcolor").resolve()
GOLDEN_DIR = KIT_DIR / "golden"


def _require_kit():
    if not (KIT_DIR / "make_weights.py").is_file():
        pytest.skip(f"DDColor parity kit not found at {KIT_DIR} (expected ../shared/ddcolor "
                    f"next to the repository)")


@pytest.fixture(scope="session")
def kit_dir():
    _require_kit()
    return KIT_DIR


@pytest.fixture(scope="session")
def make_state_dict(kit_dir):
    if str(kit_dir) not in sys.path:
        sys.path.insert(0, str(kit_dir))
    from make_weights import make_state_dict as make
    return lambda variant: make(str(kit_dir / f"keys_{variant}.json"), seed=0)


@pytest.fixture(scope="session")
def keys_layout(kit_dir):
    return lambda variant: json.loads((kit_dir / f"keys_{variant}.json").read_text())


@pytest.fixture(scope="session")
def tiny_state_dict(make_state_dict):
    return make_state_dict("tiny")


@pytest.fixture(scope="session")
def large_state_dict(make_state_dict):
    return make_state_dict("large")


def _loaded(variant, state_dict):
    from ddcolor_model import DDColor
    model = DDColor(variant)
    model.load_state_dict(state_dict, strict=True)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def tiny_model(tiny_state_dict):
    return _loaded("tiny", tiny_state_dict)


@pytest.fixture(scope="session")
def large_model(large_state_dict):
    return _loaded("large", large_state_dict)


@pytest.fixture(scope="session")
def sample_rgb(kit_dir):
    """golden/sample_rgb.png as a (1, H, W, 3) float32 tensor in [0, 1] (ComfyUI IMAGE layout)."""
    import cv2
    bgr = cv2.imread(str(GOLDEN_DIR / "sample_rgb.png"), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb.astype(np.float32) / 255.0)[None]


@pytest.fixture(scope="session")
def golden(kit_dir):
    def load(name):
        path = GOLDEN_DIR / name
        if name.endswith(".npz"):
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        import cv2
        return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return load


@pytest.fixture(scope="session")
def any_tiny_model(request):
    """A tiny model for behaviour tests: the kit's weights when present, else our synthetic ones."""
    if (KIT_DIR / "make_weights.py").is_file():
        return request.getfixturevalue("tiny_model")
    from ddcolor_model.synth import make_synthetic_state_dict
    return _loaded("tiny", make_synthetic_state_dict("tiny"))


@pytest.fixture(scope="session")
def asset_rgb():
    """The pack's bundled sample photo as a (1, H, W, 3) float32 tensor in [0, 1]."""
    import cv2
    path = REPO_ROOT / "assets" / "sample_astronaut.png"
    if not path.is_file():
        pytest.skip(f"sample photo {path} is missing")
    rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb.astype(np.float32) / 255.0)[None]
