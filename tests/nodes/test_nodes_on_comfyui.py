"""The DDColor nodes on a real ComfyUI 0.3.75: node definitions, the shipped workflows, progress,
interrupt, /free and bad input, all through ComfyUI's HTTP and websocket API."""
import json
import uuid

import numpy as np
import pytest
import torch

from tests.nodes.comfy_io import (
    COLORIZE, LOAD_IMAGE, LOADER, REPO_ROOT, api_workflow, as_shipped, assert_luminance_kept, execution_error,
    free_and_check, lab, node_of, output_pixels, read_png, run, ui_workflow, upload_array, with_image)


WORKFLOW_SAMPLES = {"person": "sample_person.png", "building": "sample_building.png"}


def sample_pixels(name="sample_astronaut.png"):
    return read_png((REPO_ROOT / "assets" / name).read_bytes())


# ------------------------------------------------------------------ node definitions


def test_object_info_lists_the_nodes_with_their_inputs(comfy, checkpoint_name):
    loader = comfy.object_info(LOADER)
    required = loader["input"]["required"]
    assert checkpoint_name in required["ckpt_name"][0]
    assert required["precision"][0] == ["auto", "fp32", "bf16", "fp16"]
    assert required["device"][0] == ["auto", "cpu", "gpu"]
    assert loader["output"] == ["DDCOLOR_MODEL"]

    colorize = comfy.object_info(COLORIZE)
    assert colorize["input_order"]["required"] == [
        "model", "image", "preset", "size", "keep_aspect", "ab_upsample", "clamp_ab", "strength"]
    required = colorize["input"]["required"]
    assert required["model"][0] == "DDCOLOR_MODEL" and required["image"][0] == "IMAGE"
    assert required["preset"][0] == ["person", "building", "custom"]
    assert required["ab_upsample"][0] == ["nearest", "bilinear"]
    assert required["size"][0] == "INT" and required["size"][1]["default"] == 0
    assert required["strength"][1]["min"] == 0.0 and required["strength"][1]["max"] == 1.0
    assert colorize["input"]["optional"]["mask"][0] == "MASK"
    assert colorize["output"] == ["IMAGE", "MASK"]

    download = comfy.object_info("DDColorDownloadModel")
    assert sorted(download["input"]["required"]["release"][0]) == [
        "ddcolor_artistic.pth", "ddcolor_modelscope.pth", "ddcolor_paper.pth", "ddcolor_paper_tiny.pth"]
    assert download["output_node"] is True


@pytest.mark.parametrize("name", ["sample_person.png", "sample_building.png", "sample_astronaut.png"])
def test_sample_photo_is_in_the_input_folder(comfy, name):
    assert comfy.view(name, folder_type="input") == (REPO_ROOT / "assets" / name).read_bytes()


@pytest.mark.parametrize("name", ["person", "building"])
def test_each_workflow_loads_its_black_and_white_sample(name):
    for workflow in (api_workflow(name), ui_workflow(name)):
        assert WORKFLOW_SAMPLES[name] in json.dumps(workflow)
    pixels = sample_pixels(WORKFLOW_SAMPLES[name]).astype(int)
    assert pixels.shape[-1] == 3 and pixels.std() > 20  # a photo, not a flat image
    assert (pixels.max(axis=-1) == pixels.min(axis=-1)).all()  # black and white


# ------------------------------------------------------------------ the shipped workflows


@pytest.mark.parametrize("name", ["person", "building"])
def test_shipped_workflow_keeps_size_and_luminance(comfy, checkpoint_name, name):
    workflow = as_shipped(comfy, api_workflow(name), checkpoint_name)
    # a fresh output prefix: a prompt identical to an earlier one (the browser test runs the same graph)
    # would come entirely from ComfyUI's cache and list no output image
    node_of(workflow, "SaveImage")["inputs"]["filename_prefix"] += f"_{uuid.uuid4().hex[:8]}"
    history = run(comfy, workflow)
    assert history["status"]["status_str"] == "success", history["status"]
    [result] = output_pixels(comfy, history)
    source = sample_pixels(WORKFLOW_SAMPLES[name])
    assert result.shape == source.shape
    assert_luminance_kept(source, result)
    # the colour did change: the model's ab replaced the photo's own
    assert np.abs(lab(result)[..., 1:] - lab(source)[..., 1:]).mean() > 2.0


# ------------------------------------------------------------------ progress, interrupt, /free


def batch_workflow(comfy, checkpoint_name, amount, **colorize_inputs):
    workflow = with_image(as_shipped(comfy, api_workflow("person"), checkpoint_name), "sample_astronaut.png",
                          **colorize_inputs)
    load_id = next(k for k, n in workflow.items() if n["class_type"] == LOAD_IMAGE)
    workflow["90"] = {"class_type": "RepeatImageBatch", "inputs": {"image": [load_id, 0], "amount": amount}}
    node_of(workflow, COLORIZE)["inputs"]["image"] = ["90", 0]
    return workflow


def colorize_id(workflow):
    return next(k for k, n in workflow.items() if n["class_type"] == COLORIZE)


def test_batch_of_four_reports_progress_per_image(comfy, checkpoint_name):
    workflow = batch_workflow(comfy, checkpoint_name, 4, preset="custom", size=64)
    client_id = uuid.uuid4().hex
    with comfy.events(client_id) as events:
        prompt_id = comfy.post_prompt(workflow, client_id=client_id)
        end = events.wait_for_prompt_end(prompt_id, timeout=300)
        assert end.type == "execution_success", end.data
        node = colorize_id(workflow)
        steps = [(e.data["value"], e.data["max"]) for e in events.of_type("progress")
                 if e.data.get("prompt_id") == prompt_id and e.data.get("node") == node]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(comfy.output_images(comfy.wait_history(prompt_id))) == 4


def test_interrupt_stops_a_running_batch_between_images(comfy, checkpoint_name):
    amount = 12
    workflow = batch_workflow(comfy, checkpoint_name, amount)  # person preset: seconds per image on a CPU
    node = colorize_id(workflow)
    client_id = uuid.uuid4().hex
    with comfy.events(client_id) as events:
        prompt_id = comfy.post_prompt(workflow, client_id=client_id)
        events.wait_for("progress", lambda d: d.get("prompt_id") == prompt_id and d.get("node") == node,
                        timeout=300)
        comfy.interrupt(prompt_id)
        end = events.wait_for_prompt_end(prompt_id, timeout=120)
        done = max(e.data["value"] for e in events.of_type("progress") if e.data.get("node") == node
                   and e.data.get("prompt_id") == prompt_id)
    assert end.type == "execution_interrupted", end.data
    assert end.data["node_type"] == COLORIZE
    assert 1 <= done < amount
    assert comfy.output_images(comfy.wait_history(prompt_id)) == []


IDLE_AFTER_PROMPT_S = 11  # ComfyUI's worker collects garbage up to 10 s after a prompt, then idles


def test_free_releases_the_model_when_the_server_is_idle(comfy, checkpoint_name):
    free_and_check(comfy, checkpoint_name, idle_s=IDLE_AFTER_PROMPT_S)


# ------------------------------------------------------------------ bad input


def small_workflow(comfy, checkpoint_name, image_name="sample_astronaut.png", **colorize_inputs):
    inputs = {"preset": "custom", "size": 64, **colorize_inputs}
    return with_image(as_shipped(comfy, api_workflow("person"), checkpoint_name), image_name, **inputs)


def loader_error(comfy, checkpoint_name, ckpt_name):
    workflow = small_workflow(comfy, checkpoint_name)
    node_of(workflow, LOADER)["inputs"]["ckpt_name"] = ckpt_name
    error = execution_error(run(comfy, workflow))
    assert error["node_type"] == LOADER
    return error["exception_message"]


def local_only(comfy):
    if not comfy.is_local:
        pytest.skip("puts files into the server's model folder: needs a server started by the harness")


def test_no_checkpoint(comfy, checkpoint_name):
    message = loader_error(comfy, checkpoint_name, "ddcolor_not_there.pth")
    assert "No DDColor checkpoint named 'ddcolor_not_there.pth' in the ddcolor model folder" in message
    assert "Download DDColor Model" in message


def test_foreign_checkpoint(comfy, checkpoint_name):
    local_only(comfy)
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)},
               comfy.models_dir / "resnet_like.pth")
    message = loader_error(comfy, checkpoint_name, "resnet_like.pth")
    assert "resnet_like.pth" in message and "not a DDColor checkpoint" in message


def test_truncated_checkpoint(comfy, checkpoint_name):
    local_only(comfy)
    data = (comfy.models_dir / checkpoint_name).read_bytes()
    (comfy.models_dir / "truncated.pth").write_bytes(data[: len(data) // 2])
    message = loader_error(comfy, checkpoint_name, "truncated.pth")
    assert "truncated.pth" in message and "truncated or corrupt" in message


def colorize_error(comfy, workflow):
    error = execution_error(run(comfy, workflow))
    assert error["node_type"] == COLORIZE
    return error["exception_message"]


def test_one_pixel_image(comfy, checkpoint_name, tmp_path):
    name = upload_array(comfy, tmp_path, np.full((1, 1, 3), 128, np.uint8), f"one_px_{uuid.uuid4().hex[:6]}.png")
    message = colorize_error(comfy, small_workflow(comfy, checkpoint_name, name))
    assert "1x1 px" in message and "at least 8x8" in message


def test_size_outside_the_preset_range(comfy, checkpoint_name):
    workflow = small_workflow(comfy, checkpoint_name, preset="person", size=1024)
    message = colorize_error(comfy, workflow)
    assert "size 1024 is outside the person preset's range 460-680" in message


def test_8k_image_is_colourised_at_full_size(comfy, checkpoint_name, tmp_path):
    height, width = 4320, 7680
    y, x = np.mgrid[0:height, 0:width]
    gray = ((x * 255 // (width - 1) + y * 97 // (height - 1)) % 256).astype(np.uint8)  # smooth: a small PNG
    pixels = np.repeat(gray[..., None], 3, axis=-1)
    name = upload_array(comfy, tmp_path, pixels, f"eight_k_{uuid.uuid4().hex[:6]}.png")
    history = run(comfy, small_workflow(comfy, checkpoint_name, name, preset="person", size=0), timeout=600)
    assert history["status"]["status_str"] == "success", history["status"]
    [result] = output_pixels(comfy, history)
    assert result.shape == (height, width, 3)
    assert_luminance_kept(pixels[::4, ::4], result[::4, ::4])


def run_with_mask_saved(comfy, workflow):
    """Saves the colorize node's MASK output too, runs the workflow and returns the pixels of
    (colorized image, mask)."""
    workflow["92"] = {"class_type": "MaskToImage", "inputs": {"mask": [colorize_id(workflow), 1]}}
    workflow["93"] = {"class_type": "SaveImage", "inputs": {"images": ["92", 0], "filename_prefix": "test_mask"}}
    history = run(comfy, workflow)
    assert history["status"]["status_str"] == "success", history["status"]
    images = {i["node"]: i for i in comfy.output_images(history)}
    save_id = next(k for k, n in workflow.items() if n["class_type"] == "SaveImage" and k != "93")
    return read_png(comfy.view(images[save_id]["filename"])), read_png(comfy.view(images["93"]["filename"]))


def test_rgba_keeps_alpha_and_gives_it_as_mask(comfy, checkpoint_name, tmp_path):
    source = sample_pixels()
    alpha = np.tile(np.linspace(0, 255, source.shape[1]).astype(np.uint8), (source.shape[0], 1))
    name = upload_array(comfy, tmp_path, np.dstack([source, alpha]), f"rgba_{uuid.uuid4().hex[:6]}.png")
    workflow = small_workflow(comfy, checkpoint_name, name)
    load_id = next(k for k, n in workflow.items() if n["class_type"] == LOAD_IMAGE)
    # Load Image splits RGBA into RGB + mask (1 - alpha); Join Image with Alpha makes the RGBA IMAGE again.
    workflow["91"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": [load_id, 0], "alpha": [load_id, 1]}}
    node_of(workflow, COLORIZE)["inputs"]["image"] = ["91", 0]
    result, mask = run_with_mask_saved(comfy, workflow)
    assert result.shape == source.shape[:2] + (4,)
    assert np.abs(result[..., 3].astype(int) - alpha).max() <= 1
    assert_luminance_kept(source, result)
    assert np.abs(mask[..., 0].astype(int) - (255 - alpha.astype(int))).max() <= 1


def test_mask_input_is_passed_through(comfy, checkpoint_name, tmp_path):
    source = sample_pixels()
    alpha = np.tile(np.linspace(255, 0, source.shape[0]).astype(np.uint8)[:, None], (1, source.shape[1]))
    name = upload_array(comfy, tmp_path, np.dstack([source, alpha]), f"masked_{uuid.uuid4().hex[:6]}.png")
    workflow = small_workflow(comfy, checkpoint_name, name)
    load_id = next(k for k, n in workflow.items() if n["class_type"] == LOAD_IMAGE)
    node_of(workflow, COLORIZE)["inputs"]["mask"] = [load_id, 1]  # RGB image + its mask (1 - alpha)
    result, mask = run_with_mask_saved(comfy, workflow)
    assert result.shape == source.shape  # RGB in, RGB out
    assert np.abs(mask[..., 0].astype(int) - (255 - alpha.astype(int))).max() <= 1
