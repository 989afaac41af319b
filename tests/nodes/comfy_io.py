"""Test utilities for the node tests on a real ComfyUI: workflows, images in and out, error messages."""
from __future__ import annotations

import copy
import time
import json
import uuid
from pathlib import Path

import cv2
import numpy as np

from tests.harness.weights import place_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / "workflows"
LOADER, COLORIZE, LOAD_IMAGE, SAVE = "DDColorModelLoader", "DDColorColorize", "LoadImage", "SaveImage"


def api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text(encoding="utf-8"))


def ui_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text(encoding="utf-8"))


def node_of(workflow: dict, class_type: str) -> dict:
    return next(n for n in workflow.values() if n["class_type"] == class_type)


def as_shipped(comfy, workflow: dict, checkpoint_name: str) -> dict:
    """The workflow ready to run on `comfy`: on a server the harness owns, the synthetic checkpoint is
    put in place under the name the workflow uses (so it runs unchanged); on a remote server the
    workflow is pointed at the checkpoint that server has."""
    workflow = copy.deepcopy(workflow)
    loader = node_of(workflow, LOADER)["inputs"]
    if comfy.is_local:
        place_checkpoint(comfy.models_dir / checkpoint_name, comfy.models_dir, name=loader["ckpt_name"])
    else:
        loader["ckpt_name"] = checkpoint_name
    return workflow


def with_image(workflow: dict, image_name: str, **colorize_inputs) -> dict:
    workflow = copy.deepcopy(workflow)
    node_of(workflow, LOAD_IMAGE)["inputs"]["image"] = image_name
    node_of(workflow, COLORIZE)["inputs"].update(colorize_inputs)
    node_of(workflow, SAVE)["inputs"]["filename_prefix"] = f"test_{uuid.uuid4().hex[:8]}"
    return workflow


def upload_array(comfy, tmp_path: Path, pixels: np.ndarray, name: str) -> str:
    """Uploads an RGB(A) uint8 array as a PNG into the server's input folder; returns its name."""
    path = tmp_path / name
    order = cv2.COLOR_RGBA2BGRA if pixels.ndim == 3 and pixels.shape[-1] == 4 else cv2.COLOR_RGB2BGR
    assert cv2.imwrite(str(path), cv2.cvtColor(pixels, order))
    return comfy.upload_image(path)["name"]


def read_png(data: bytes) -> np.ndarray:
    """PNG bytes -> RGB or RGBA uint8 array."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    order = cv2.COLOR_BGRA2RGBA if pixels.shape[-1] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(pixels, order)


def output_pixels(comfy, history: dict) -> list[np.ndarray]:
    return [read_png(comfy.view(i["filename"], i.get("subfolder", ""), i.get("type", "output")))
            for i in comfy.output_images(history)]


def run(comfy, workflow: dict, timeout: float = 300.0) -> dict:
    return comfy.wait_history(comfy.post_prompt(workflow), timeout=timeout)


def execution_error(history: dict) -> dict:
    """The execution_error event of a failed prompt (exception_message, node_type, ...)."""
    assert history["status"]["status_str"] == "error", f"the prompt did not fail: {history['status']}"
    for kind, data in history["status"]["messages"]:
        if kind == "execution_error":
            return data
    raise AssertionError(f"no execution_error in {history['status']['messages']}")


def lab(rgb: np.ndarray) -> np.ndarray:
    """cv2 Lab (L in 0..100) of an RGB uint8 image, as the DDColor pipeline computes it."""
    return cv2.cvtColor(rgb[..., :3].astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


# One 8-bit level moves L by at most about 0.5 (L in 0..100); 1.0 leaves room for float32 rounding.
L_ROUNDING = 1.0


def assert_luminance_kept(source: np.ndarray, result: np.ndarray, min_unclipped: float = 0.5) -> None:
    """The output's Lab L equals the input's within rounding wherever the colour merge stayed in the
    RGB gamut. Where the new colour is out of gamut, Lab -> RGB clips a channel to 0 or 255 and L
    moves with it (synthetic weights predict very saturated colour), so those pixels are left out;
    at least `min_unclipped` of the image must remain, so the check cannot pass on an empty set."""
    assert source.shape[:2] == result.shape[:2], f"size changed: {source.shape} -> {result.shape}"
    unclipped = ((result[..., :3] > 0) & (result[..., :3] < 255)).all(axis=-1)
    assert unclipped.mean() >= min_unclipped, f"only {unclipped.mean():.0%} of the pixels are in gamut"
    diff = np.abs(lab(source)[..., 0] - lab(result)[..., 0])[unclipped]
    assert diff.max() <= L_ROUNDING, f"L moved by up to {diff.max():.2f} (mean {diff.mean():.3f})"


def chroma(rgb: np.ndarray) -> float:
    """Mean ab magnitude: about 0 for a gray image."""
    ab = lab(rgb)[..., 1:]
    return float(np.sqrt((ab ** 2).sum(-1)).mean())


def models_status(comfy) -> dict:
    """GET /ddcolor/models: the DDColor models ComfyUI holds."""
    return comfy.get_json("/ddcolor/models")


def wait_status(comfy, predicate, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = models_status(comfy)
        if predicate(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.25)


def free_and_check(server, checkpoint_name: str, image_name: str = "sample_astronaut.png",
                   idle_s: float = 0.0, timeout: float = 5.0) -> None:
    """Runs a small colorize, checks the model is held, POSTs /free and checks that it is released
    (out of ComfyUI's loaded models and no longer referenced) within `timeout`."""
    workflow = with_image(api_workflow("person"), image_name, preset="custom", size=64)
    node_of(workflow, LOADER)["inputs"]["ckpt_name"] = checkpoint_name
    assert run(server, workflow)["status"]["status_str"] == "success"
    time.sleep(idle_s)
    loaded = models_status(server)
    assert loaded["loaded_count"] >= 1 and loaded["alive_count"] >= 1, loaded
    assert {(m["variant"], m["dtype"]) for m in loaded["loaded"]} == {("tiny", "fp32")}

    server.free(unload_models=True, free_memory=True)
    status = wait_status(server, lambda s: s["loaded_count"] == 0 and s["alive_count"] == 0, timeout)
    assert status["loaded_count"] == 0, f"still in ComfyUI's loaded models after POST /free: {status}"
    assert status["alive_count"] == 0, f"still referenced after POST /free: {status}"
