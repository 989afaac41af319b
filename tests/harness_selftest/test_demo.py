"""scripts/demo: the README's main command, end to end (--once), and its checkpoint choice."""
import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.conftest import comfyui_dir_or_skip, remote_url
from tests.harness.server import REPO_ROOT

DEMO = REPO_ROOT / "scripts" / "demo"


def load_demo_module():
    spec = importlib.util.spec_from_file_location("demo_script", REPO_ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo_module(monkeypatch):
    monkeypatch.delenv("DDCOLOR_CHECKPOINT", raising=False)
    return load_demo_module()


def test_checkpoint_choice_prefers_the_env_then_official_names(demo_module, tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    assert demo_module.find_checkpoint(models) is None
    (models / "ddcolor_synthetic_tiny.pth").write_bytes(b"x")
    assert demo_module.find_checkpoint(models) is None, "synthetic files are not an official checkpoint"
    (models / "my_finetune.pth").write_bytes(b"x")
    assert demo_module.find_checkpoint(models).name == "my_finetune.pth"
    (models / "ddcolor_artistic.pth").write_bytes(b"x")
    (models / "ddcolor_paper_tiny.pth").write_bytes(b"x")
    assert demo_module.find_checkpoint(models).name == "ddcolor_paper_tiny.pth"
    own = tmp_path / "elsewhere.pth"
    own.write_bytes(b"x")
    monkeypatch.setenv("DDCOLOR_CHECKPOINT", str(own))
    assert demo_module.find_checkpoint(models) == own.resolve()
    monkeypatch.setenv("DDCOLOR_CHECKPOINT", str(tmp_path / "missing.pth"))
    with pytest.raises(SystemExit, match="DDCOLOR_CHECKPOINT=.*missing.pth is not a file"):
        demo_module.find_checkpoint(models)


def test_person_workflow_is_pointed_at_the_checkpoint(demo_module):
    workflow = demo_module.person_workflow("some.pth")
    [loader] = [n for n in workflow.values() if n["class_type"] == "DDColorModelLoader"]
    assert loader["inputs"]["ckpt_name"] == "some.pth"


@pytest.mark.slow
@pytest.mark.comfyui
def test_demo_once_colourises_the_sample_and_says_where(tmp_path, artifacts):
    if remote_url():
        pytest.skip("COMFYUI_URL is set: the demo starts its own ComfyUI")
    comfyui_dir_or_skip()
    env = {k: v for k, v in os.environ.items() if k != "DDCOLOR_CHECKPOINT"}
    result = subprocess.run([str(DEMO), "--once", "--port", "0", "--workdir", str(tmp_path / "demo")],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=900)
    (artifacts / "demo-output.txt").write_text(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:]
    [output] = re.findall(r"^OUTPUT: (.+)$", result.stdout, re.M)
    [url] = re.findall(r"^UI: (http://127\.0\.0\.1:\d+/)", result.stdout, re.M)
    with Image.open(output) as image, Image.open(REPO_ROOT / "assets" / "sample_person.png") as sample:
        assert image.size == sample.size
        image.save(artifacts / "demo-output.png")
    official = load_demo_module().find_checkpoint(REPO_ROOT / "models" / "ddcolor")
    assert ("SYNTHETIC WEIGHTS" in result.stdout) == (official is None)
    assert "ComfyUI stopped" in result.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "system_stats", timeout=2)
    assert Path(tmp_path / "demo" / "comfyui.log").is_file()
