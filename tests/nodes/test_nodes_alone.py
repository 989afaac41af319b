"""The DDColor nodes in a ComfyUI whose pack has the nodes alone (no VRAM guard): /free, the download
node fetching through huggingface_hub from a loopback server that speaks the Hub's resolve protocol
(HF_ENDPOINT), and a user's input file that the pack must never replace. One server for the module."""
import os
import uuid

import pytest

from nodes.releases import REPO_ID
from tests.harness.comfyui_install import InstallError, ensure_comfyui
from tests.harness.provision import build_server
from tests.nodes.comfy_io import REPO_ROOT, api_workflow, free_and_check, node_of, run
from tests.nodes.hub_server import HubFile, HubServer

pytestmark = pytest.mark.comfyui

RELEASE = "ddcolor_paper_tiny.pth"
USERS_PHOTO = b"not the pack's sample: a user's own file"
SAMPLE_COPY = "ddcolor_sample.png"


@pytest.fixture(scope="module")
def release_server(synthetic_checkpoint):
    """(HF_ENDPOINT, payload): the synthetic checkpoint published as <RELEASE> of the official repo."""
    if synthetic_checkpoint is None:
        pytest.skip("no synthetic DDColor checkpoint to serve")
    payload = synthetic_checkpoint.read_bytes()
    hub = HubServer(REPO_ID, {RELEASE: HubFile(payload)})
    yield hub.endpoint, payload
    hub.close()


def nodes_only_pack(folder):
    folder.mkdir()
    for part in ("nodes", "ddcolor_model", "assets", "workflows"):
        (folder / part).symlink_to(REPO_ROOT / part, target_is_directory=True)
    (folder / "__init__.py").write_text("from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS\n")
    return folder


@pytest.fixture(scope="module")
def alone(tmp_path_factory, synthetic_checkpoint, release_server):
    if os.environ.get("COMFYUI_URL"):
        pytest.skip("COMFYUI_URL is set: tests that start their own ComfyUI are skipped")
    try:
        ensure_comfyui()
    except InstallError as error:
        pytest.skip(f"ComfyUI cannot be installed here: {error}")
    base = tmp_path_factory.mktemp("comfy-alone")
    server = build_server(base / "server", name="nodes-alone", env={"HF_ENDPOINT": release_server[0], "HF_HOME": str(base / "hf")},
                          probe=False, checkpoint=synthetic_checkpoint,
                          pack_root=nodes_only_pack(base / "pack"))
    server.folders.input.mkdir(parents=True, exist_ok=True)
    (server.folders.input / "sample_astronaut.png").write_bytes(USERS_PHOTO)
    (server.folders.input / SAMPLE_COPY).write_bytes((REPO_ROOT / "assets" / "sample_astronaut.png").read_bytes())
    with server:
        yield server


def test_users_input_file_is_never_replaced(alone):
    assert alone.view("sample_astronaut.png", folder_type="input") == USERS_PHOTO


def test_free_releases_the_model(alone):
    free_and_check(alone, alone.checkpoint_name, image_name=SAMPLE_COPY)


def test_download_node_fetches_into_the_model_folder_then_the_workflow_runs(alone, release_server):
    payload = release_server[1]
    client_id = uuid.uuid4().hex
    prompt = {"1": {"class_type": "DDColorDownloadModel", "inputs": {"release": RELEASE}}}
    with alone.events(client_id) as events:
        prompt_id = alone.post_prompt(prompt, client_id=client_id)
        end = events.wait_for_prompt_end(prompt_id, timeout=300)
        progress = [e.data for e in events.of_type("progress") if e.data.get("prompt_id") == prompt_id]
    assert end.type == "execution_success", end.data
    assert (alone.models_dir / RELEASE).read_bytes() == payload
    assert [p.name for p in alone.models_dir.iterdir() if p.name.startswith(".")] == []  # no temporary file
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 100
    assert RELEASE in alone.wait_history(prompt_id)["outputs"]["1"]["text"][0]

    # the downloaded file is the one the shipped workflow loads
    workflow = api_workflow("person")
    node_of(workflow, "LoadImage")["inputs"]["image"] = SAMPLE_COPY
    assert node_of(workflow, "DDColorModelLoader")["inputs"]["ckpt_name"] == RELEASE
    assert run(alone, workflow)["status"]["status_str"] == "success"
