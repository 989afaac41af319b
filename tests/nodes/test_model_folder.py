"""The ddcolor model folder, with ComfyUI's real folder_paths module (imported from the installed
ComfyUI in isolation: every module this test imports is dropped again afterwards)."""
import importlib
import os
import sys

import pytest

from tests.harness.comfyui_install import InstallError, ensure_comfyui


@pytest.fixture
def model_folder(monkeypatch, tmp_path):
    """nodes.model_folder bound to a fresh folder_paths whose models dir is under tmp_path."""
    try:
        comfyui = ensure_comfyui()
    except InstallError as error:
        pytest.skip(f"ComfyUI cannot be installed here: {error}")
    before = set(sys.modules)
    monkeypatch.setattr(sys, "path", sys.path + [str(comfyui)])  # after the repo: `nodes` stays ours
    sys.modules.pop("nodes.model_folder", None)
    try:
        folder_paths = importlib.import_module("folder_paths")
        monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path / "models"))
        yield importlib.import_module("nodes.model_folder"), folder_paths
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]


def test_registers_and_creates_models_ddcolor_when_not_declared(model_folder, tmp_path):
    module, folder_paths = model_folder
    assert "ddcolor" not in folder_paths.folder_names_and_paths
    expected = str(tmp_path / "models" / "ddcolor")
    assert module.register_model_folder() == [expected]
    assert os.path.isdir(expected)
    (tmp_path / "models" / "ddcolor" / "ddcolor_paper_tiny.pth").write_bytes(b"x")
    (tmp_path / "models" / "ddcolor" / "notes.txt").write_text("not a checkpoint")
    assert module.checkpoint_names() == ["ddcolor_paper_tiny.pth"]
    assert module.checkpoint_path("ddcolor_paper_tiny.pth") == os.path.join(expected, "ddcolor_paper_tiny.pth")
    with pytest.raises(FileNotFoundError, match=r"No DDColor checkpoint named 'missing.pth' in the ddcolor model folder \("):
        module.checkpoint_path("missing.pth")


def test_keeps_a_folder_declared_by_extra_model_paths(model_folder, tmp_path):
    module, folder_paths = model_folder
    shared = tmp_path / "shared_models" / "ddcolor"  # as extra_model_paths.yaml would add it
    folder_paths.add_model_folder_path("ddcolor", str(shared))
    assert module.register_model_folder() == [str(shared)]
    assert not (tmp_path / "models" / "ddcolor").exists()
    assert not shared.exists()  # listing never creates a declared folder...
    assert module.download_folder() == str(shared) and shared.is_dir()  # ...a download does
