"""The download node inside a real ComfyUI, fetching from a loopback server that stands in for
Hugging Face; and the pack never replacing a user's file in the input folder."""
import hashlib
import http.server
import threading
import uuid

import pytest

from nodes.releases import BASE_URL_ENV
from tests.nodes.comfy_helpers import REPO_ROOT, api_workflow, node_of, run

RELEASE = "ddcolor_paper_tiny.pth"


@pytest.fixture
def release_server(synthetic_checkpoint):
    """Serves the synthetic checkpoint as /<RELEASE>, with Hugging Face's X-Linked-* headers."""
    if synthetic_checkpoint is None:
        pytest.skip("no synthetic DDColor checkpoint to serve")
    payload = synthetic_checkpoint.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != f"/{RELEASE}":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Linked-Size", str(len(payload)))
            self.send_header("X-Linked-ETag", '"%s"' % hashlib.sha256(payload).hexdigest())
            self.end_headers()
            self.wfile.write(payload)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", payload
    httpd.shutdown()
    httpd.server_close()


def test_download_node_fetches_into_the_model_folder_then_the_workflow_runs(comfy_factory, release_server):
    url, payload = release_server
    server = comfy_factory(env={BASE_URL_ENV: url}, checkpoint=False, start=False)
    users_photo = b"not the pack's sample: a user's own file"
    server.folders.input.mkdir(parents=True, exist_ok=True)
    (server.folders.input / "sample_astronaut.png").write_bytes(users_photo)
    server.start()
    assert server.view("sample_astronaut.png", folder_type="input") == users_photo  # never overwritten

    client_id = uuid.uuid4().hex
    prompt = {"1": {"class_type": "DDColorDownloadModel", "inputs": {"release": RELEASE}}}
    with server.events(client_id) as events:
        prompt_id = server.post_prompt(prompt, client_id=client_id)
        end = events.wait_for_prompt_end(prompt_id, timeout=300)
        progress = [e.data for e in events.of_type("progress") if e.data.get("prompt_id") == prompt_id]
    assert end.type == "execution_success", end.data
    assert (server.models_dir / RELEASE).read_bytes() == payload
    assert sorted(p.name for p in server.models_dir.iterdir()) == [RELEASE]  # no temporary file left
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 100
    outputs = server.wait_history(prompt_id)["outputs"]["1"]
    assert RELEASE in outputs["text"][0]

    # the downloaded file is what the shipped workflow loads (the sample photo comes from the repo here)
    (server.folders.input / "ddcolor_sample.png").write_bytes((REPO_ROOT / "assets" / "sample_astronaut.png").read_bytes())
    workflow = api_workflow("person")
    node_of(workflow, "LoadImage")["inputs"]["image"] = "ddcolor_sample.png"
    assert node_of(workflow, "DDColorModelLoader")["inputs"]["ckpt_name"] == RELEASE
    assert run(server, workflow)["status"]["status_str"] == "success"
