"""The harness against a real ComfyUI: start, pack installed, prompts over HTTP and websocket, stop.

Only ComfyUI's core nodes are used here, so these tests prove the harness, not the pack's nodes.
"""
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.harness.client import PromptRejected
from tests.harness.server import PACK_NAME, REPO_ROOT, ComfyStartError

SAMPLE = REPO_ROOT / "assets" / "sample_astronaut.png"


def invert_workflow(image_name: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "harness/invert"}},
    }


def test_server_runs_comfyui_0_3_75_with_the_pack_imported(comfy):
    assert comfy.system_stats()["system"]["comfyui_version"] == "0.3.75"
    if comfy.is_local:
        assert "IMPORT FAILED" not in "\n".join(
            line for line in comfy.log_text().splitlines() if str(comfy.folders.pack_link) in line)
        assert f"custom_nodes/{PACK_NAME}" in comfy.log_text(), "the pack's folder was not loaded"


def test_pack_web_directory_is_served(comfy):
    shipped = sorted(p.relative_to(REPO_ROOT / "web").as_posix() for p in (REPO_ROOT / "web").rglob("*.js"))
    if not shipped:
        pytest.skip("web/ holds no .js yet")
    listed = comfy.get_json("/extensions")
    served = sorted(u.split(f"/extensions/{PACK_NAME}/", 1)[1] for u in listed if f"/extensions/{PACK_NAME}/" in u)
    assert served == shipped
    response = comfy.get(f"/extensions/{PACK_NAME}/{shipped[0]}")
    assert response.status_code == 200
    assert response.content == (REPO_ROOT / "web" / shipped[0]).read_bytes()


def test_ddcolor_model_folder_lists_the_placed_checkpoint(comfy, checkpoint_name):
    assert "ddcolor" in comfy.get_json("/models")
    assert checkpoint_name in comfy.get_json("/models/ddcolor")


def test_prompt_runs_with_websocket_events_history_and_output(comfy, artifacts):
    uploaded = comfy.upload_image(SAMPLE)
    assert uploaded["name"] == SAMPLE.name
    with comfy.events() as events:
        events.wait_for("status")  # ComfyUI greets every new socket with the queue status
        prompt_id = comfy.post_prompt(invert_workflow(uploaded["name"]), client_id=events.client_id)
        executed = events.wait_for("executed", lambda d: d["prompt_id"] == prompt_id and d["node"] == "3")
        end = events.wait_for_prompt_end(prompt_id)
    assert end.type == "execution_success"
    assert {"execution_start", "executing"} <= set(events.types())
    entry = comfy.wait_history(prompt_id, timeout=30)
    assert entry["status"]["status_str"] == "success"
    [image] = comfy.output_images(entry)
    assert image == {**executed.data["output"]["images"][0], "node": "3"}
    data = comfy.view(image["filename"], image["subfolder"], image["type"])
    (artifacts / "inverted.png").write_bytes(data)
    with Image.open(SAMPLE) as source, Image.open(artifacts / "inverted.png") as result:
        assert result.size == source.size
        inverted = [255 - c for c in source.convert("RGB").getpixel((10, 10))]
        got = result.convert("RGB").getpixel((10, 10))
        assert all(abs(a - b) <= 1 for a, b in zip(got, inverted)), (got, inverted)  # float round trip
    if comfy.is_local:
        assert comfy.output_file(image).read_bytes() == data


def test_invalid_prompt_is_rejected_in_comfyui_error_shape(comfy):
    with pytest.raises(PromptRejected) as caught:
        comfy.post_prompt({"1": {"class_type": "NoSuchNodeAnywhere", "inputs": {}}})
    assert caught.value.status == 400
    assert caught.value.body["error"]["type"] == "invalid_prompt"
    assert "NoSuchNodeAnywhere" in caught.value.body["error"]["message"]


def test_queue_free_and_interrupt_are_accepted(comfy):
    queue = comfy.queue()
    assert set(queue) == {"queue_running", "queue_pending"}
    comfy.wait_queue_empty(timeout=60)
    comfy.free(unload_models=True, free_memory=True)
    comfy.interrupt()
    assert comfy.object_info("LoadImage")["input"]["required"]["image"]
    with pytest.raises(KeyError, match="NoSuchNodeAnywhere"):
        comfy.object_info("NoSuchNodeAnywhere")


def _environ_of(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_factory_server_has_its_own_env_restarts_and_stops_by_pid(comfy_factory, monkeypatch):
    monkeypatch.setenv("GPU_GUARD_PAUSE_AT", "0.5")  # from the caller's shell: must not leak in
    server = comfy_factory(name="selftest-env", env={"HARNESS_SELFTEST": "yes"}, checkpoint=False)
    environ = _environ_of(server.pid)
    assert environ["HARNESS_SELFTEST"] == "yes"
    assert environ["GPU_GUARD_PROBE"] == server.probe.spec
    assert "GPU_GUARD_PAUSE_AT" not in environ
    assert server.probe.path.read_text() == '{"used_bytes": 1000000000, "total_bytes": 10000000000}'
    assert list(server.models_dir.iterdir()) == []
    first_pid = server.pid
    server.restart(env={**server.env, "HARNESS_SELFTEST": "again"})
    assert server.pid != first_pid and not Path(f"/proc/{first_pid}/cmdline").exists()
    assert _environ_of(server.pid)["HARNESS_SELFTEST"] == "again"
    assert server.log_text().count("\n$ ") + server.log_text().startswith("$ ") == 2, "restart appends to the log"
    pid, url = server.pid, server.url
    assert server.stop() is not None
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/system_stats", timeout=2)
    assert server.log_path.is_file() and "Starting server" in server.log_text()


def test_failed_pack_import_is_an_error_with_the_log(comfy_factory, tmp_path):
    broken = tmp_path / "broken_pack"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('selftest: this pack cannot import')\n")
    with pytest.raises(ComfyStartError, match="could not import the pack") as caught:
        comfy_factory(name="selftest-broken-pack", pack_root=broken, checkpoint=False)
    assert "selftest: this pack cannot import" in str(caught.value)


def test_early_exit_is_an_error_with_the_log_tail(comfy_factory):
    started = time.monotonic()
    with pytest.raises(ComfyStartError, match="exited with code 2") as caught:
        comfy_factory(name="selftest-bad-flag", extra_args=["--no-such-flag"], checkpoint=False)
    assert "unrecognized arguments: --no-such-flag" in str(caught.value)
    assert time.monotonic() - started < 60, "an early exit must not wait for the start-up timeout"


def test_probe_file_writes_are_whole_json(tmp_path):
    from tests.harness.probe_file import ProbeFile

    probe = ProbeFile(tmp_path / "p.json")
    probe.write_ratio(0.85)
    assert probe.path.read_text() == '{"used_bytes": 8500000000, "total_bytes": 10000000000}'
    assert probe.spec == f"file:{tmp_path / 'p.json'}"
    probe.write_text("not json")
    assert probe.path.read_text() == "not json"
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
    probe.remove()
    assert not probe.path.exists()


def test_a_live_servers_log_is_never_overwritten_by_another_run(tmp_path):
    from tests.harness.server import _claim_log

    first_path, first = _claim_log(tmp_path / "srv.log", fresh=True)
    first.write(b"first server\n")
    first.flush()
    second_path, second = _claim_log(tmp_path / "srv.log", fresh=True)
    assert second_path == tmp_path / "srv-2.log"
    assert first_path.read_bytes() == b"first server\n"
    second.close()
    first.close()
    again_path, again = _claim_log(tmp_path / "srv.log", fresh=True)
    assert again_path == first_path and again_path.read_bytes() == b"", "a released log is reused, fresh"
    again.close()
