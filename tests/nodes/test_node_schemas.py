"""The pack exports its nodes in ComfyUI's V3 schema where ComfyUI has comfy_api.latest (0.3.75 has)
and in V1 when DDCOLOR_NODE_SCHEMA=v1: exactly one of them, with the same node ids, inputs and
defaults, the guard's VRAM_ESTIMATE on the classes ComfyUI registers, and the workflows and the
template-browser scenario running in both. The V3 side also runs the rest of the node suite (the
session server exports V3): the shipped workflows saved with the V1 nodes, the template-browser test,
bad input, progress and interrupt."""
import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.harness.client import PromptRejected
from tests.harness.comfyui_install import InstallError, ensure_comfyui
from tests.harness.weights import place_checkpoint
from tests.nodes.comfy_io import COLORIZE, LOADER, REPO_ROOT, api_workflow, as_shipped, node_of, run

NODE_IDS = ["DDColorModelLoader", "DDColorColorize", "DDColorDownloadModel"]
V1_ONLY = {"DDCOLOR_NODE_SCHEMA": "v1"}

# Loads the repo as a custom node with ComfyUI's own nodes.load_custom_node, then reports what
# ComfyUI registered: where the guard looks a node class up (ComfyUI's nodes.NODE_CLASS_MAPPINGS).
LOAD_LIKE_COMFYUI = """
import asyncio, json, sys
sys.argv = [sys.argv[0], "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()  # as main.py does, so --cpu applies
import nodes
from comfy_api.latest import io
pack = {pack!r}
assert asyncio.run(nodes.load_custom_node(pack))
module = sys.modules[pack.replace(".", "_x_")]
prompt = {{"1": {{"class_type": "LoadImage", "inputs": {{"image": "x.png"}}}},
          "2": {{"class_type": "DDColorModelLoader", "inputs": {{"ckpt_name": "none.pth", "precision": "fp32", "device": "cpu"}}}},
          "3": {{"class_type": "DDColorColorize", "inputs": {{"model": ["2", 0], "image": ["1", 0], "preset": "person",
               "size": 0, "keep_aspect": False, "ab_upsample": "nearest", "clamp_ab": False, "strength": 1.0}}}}}}
report = {{"exports": sorted(n for n in ("NODE_CLASS_MAPPINGS", "comfy_entrypoint") if hasattr(module, n)), "nodes": {{}}}}
for node_id in {node_ids!r}:
    cls = nodes.NODE_CLASS_MAPPINGS[node_id]
    v1 = getattr(cls, "V1_CLASS", cls)
    estimate = getattr(cls, "VRAM_ESTIMATE", None)
    report["nodes"][node_id] = {{
        "v3": isinstance(cls, type) and issubclass(cls, io.ComfyNode),
        "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_id),
        "has_estimate": estimate is not None, "v1_has_estimate": hasattr(v1, "VRAM_ESTIMATE"),
        "estimate": estimate(prompt["3"]["inputs"], prompt) if estimate and node_id == "DDColorColorize" else None,
        "v1_estimate": v1.VRAM_ESTIMATE(prompt["3"]["inputs"], prompt) if hasattr(v1, "VRAM_ESTIMATE") and node_id == "DDColorColorize" else None,
    }}
print("REPORT " + json.dumps(report))
"""


def loaded_like_comfyui(tmp_path, env):
    try:
        comfyui = ensure_comfyui()
    except InstallError as error:
        pytest.skip(f"ComfyUI cannot be installed here: {error}")
    pack = tmp_path / "custom_nodes" / "comfyui-ddcolor-vram-guard"
    pack.parent.mkdir()
    pack.symlink_to(REPO_ROOT, target_is_directory=True)
    script = LOAD_LIKE_COMFYUI.format(pack=str(pack), node_ids=NODE_IDS)
    environment = {k: v for k, v in os.environ.items() if k != "DDCOLOR_NODE_SCHEMA"}
    result = subprocess.run([sys.executable, "-c", script], cwd=comfyui, env={**environment, **env},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


@pytest.mark.parametrize("env, exports, v3", [({}, ["comfy_entrypoint"], True), (V1_ONLY, ["NODE_CLASS_MAPPINGS"], False)],
                         ids=["auto-v3", "forced-v1"])
def test_comfyui_registers_one_schema_and_the_estimate_contract_holds(tmp_path, env, exports, v3):
    report = loaded_like_comfyui(tmp_path, env)
    assert report["exports"] == exports  # exactly one: ComfyUI would take NODE_CLASS_MAPPINGS first
    assert {n: r["display_name"] for n, r in report["nodes"].items()} == {
        "DDColorModelLoader": "Load DDColor Model", "DDColorColorize": "DDColor Colorize",
        "DDColorDownloadModel": "Download DDColor Model"}
    for node_id, node in report["nodes"].items():
        assert node["v3"] is v3, node_id
        # the class ComfyUI registered carries VRAM_ESTIMATE exactly when the V1 class does, with its answer
        assert node["has_estimate"] == node["v1_has_estimate"], node_id
        assert node["estimate"] == node["v1_estimate"], node_id


def comparable(info):
    """What a node shows in /object_info, with each input as (type, the V1 options): a V3 choice input
    also lists its choices under `options`; V3 output nodes declare hidden inputs."""
    return {
        "input": {section: {name: [spec[0], {k: v for k, v in (spec[1] if len(spec) > 1 else {}).items()
                                             if k not in ("options", "multiselect")}]
                            for name, spec in info["input"].get(section, {}).items()}
                  for section in ("required", "optional")},
        **{key: info[key] for key in ("input_order", "output", "output_name", "output_is_list", "name",
                                      "display_name", "description", "category", "output_node")},
    }


@pytest.fixture
def v1_comfy(comfy_factory):
    return comfy_factory(env=V1_ONLY)


def test_object_info_is_the_same_in_both_schemas(comfy, v1_comfy):
    assert "nodes exported in the V3 schema" in comfy.log_text()
    assert "nodes exported in the V3 schema" not in v1_comfy.log_text()
    if comfy.is_local:  # the same checkpoints in both model folders, so the loader's choices can match
        for checkpoint in comfy.models_dir.iterdir():
            place_checkpoint(checkpoint, v1_comfy.models_dir)
    for node_id in NODE_IDS:
        v3_info, v1_info = comfy.object_info(node_id), v1_comfy.object_info(node_id)
        v3_info["input_order"].pop("hidden", None)
        assert comparable(v3_info) == comparable(v1_info), node_id
    assert "hidden" not in v1_comfy.object_info("DDColorDownloadModel")["input"]


@pytest.mark.parametrize("name", ["person", "building"])
def test_v1_schema_runs_the_shipped_workflows(v1_comfy, name):
    workflow = as_shipped(v1_comfy, api_workflow(name), v1_comfy.checkpoint_name)
    node_of(workflow, "SaveImage")["inputs"]["filename_prefix"] += f"_{uuid.uuid4().hex[:8]}"
    history = run(v1_comfy, workflow)
    assert history["status"]["status_str"] == "success", history["status"]
    assert len(v1_comfy.output_images(history)) == 1


def test_v3_choice_inputs_refuse_a_value_outside_the_choices(comfy, checkpoint_name):
    workflow = as_shipped(comfy, api_workflow("person"), checkpoint_name)
    node_of(workflow, LOADER)["inputs"]["precision"] = "fp8"
    node_of(workflow, COLORIZE)["inputs"]["preset"] = "portrait"
    with pytest.raises(PromptRejected) as refused:
        comfy.post_prompt(workflow)
    errors = [e for node in refused.value.body["node_errors"].values() for e in node["errors"]]
    assert sorted((e["type"], e["extra_info"]["input_name"]) for e in errors) == [
        ("value_not_in_list", "precision"), ("value_not_in_list", "preset")]


def test_v1_schema_passes_the_template_browser_test(v1_comfy, browser_page):
    """The template-browser scenario of tests/nodes/test_browser.py (which the V3 session server runs)
    on a V1 server: the shipped person workflow opens from the template browser and runs."""
    from tests.nodes.test_browser import test_person_workflow_opens_from_the_template_browser_and_runs as scenario

    scenario(v1_comfy, v1_comfy.checkpoint_name, browser_page)
