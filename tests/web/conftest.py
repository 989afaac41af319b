"""Fixtures for the frontend tests: a real ComfyUI whose VRAM guard reads a probe file, and a page of
ComfyUI's real frontend (the suite's `browser_page`, headless Chromium) with this pack's extension.

The guard polls every 100 ms, pinned by GPU_GUARD_POLL_S: the settings tests also use it to check how
a setting pinned by the environment is shown. Each test gets a fresh page and a guard reset to its
defaults with an empty queue.

COMFYUI_FRONT_END_ROOT=<a frontend's static folder> runs these tests against that frontend build
(ComfyUI's --front-end-root) instead of the one ComfyUI ships.
"""
from __future__ import annotations

import os

import pytest

from tests.conftest import comfyui_dir_or_skip, remote_url
from tests.gpu_guard.guard_drill import GuardDrill
from tests.gpu_guard.test_oom_rescue import OOM_PACK
from tests.harness.artifacts import artifact_dir
from tests.harness.provision import build_server
from tests.web.comfy_ui import GAUGE, GuardUI

DEFAULTS = dict(pause_at=0.85, resume_at=0.75, max_held=0, hold_timeout_s=0, hold_timeout_action="keep",
                fast_lane=True)


@pytest.fixture(scope="session", autouse=True)
def fresh_screenshots():
    """test-artifacts/web/ holds this run's screenshots only, so none of them is stale."""
    for old in artifact_dir("web").glob("*.png"):
        old.unlink()


@pytest.fixture(scope="session")
def web_guard(tmp_path_factory):
    """The ComfyUI of the frontend tests with its probe file (a GuardDrill)."""
    if remote_url():
        pytest.skip("the frontend tests drive the probe file of a server they start; "
                    "COMFYUI_URL points at a server this suite does not own")
    comfyui_dir_or_skip()
    front_end = os.environ.get("COMFYUI_FRONT_END_ROOT")
    server = build_server(tmp_path_factory.mktemp("web_comfy"), name="web", env={"GPU_GUARD_POLL_S": "0.1"},
                          extra_args=("--front-end-root", front_end) if front_end else ())
    # the OOM drill node, for the rescue notice (tests/gpu_guard/oom_drill_pack)
    server.folders.custom_nodes.mkdir(parents=True, exist_ok=True)
    (server.folders.custom_nodes / "oom_drill_nodes").symlink_to(OOM_PACK, target_is_directory=True)
    with server.start():
        yield GuardDrill(server, server.probe)


@pytest.fixture
def guard_ui(request, web_guard, browser_page):
    """ComfyUI open in a fresh page, the guard running with its default settings and an empty queue."""
    web_guard.client.post("/queue", {"clear": True})
    web_guard.set_config(**DEFAULTS)
    web_guard.resume()
    browser_page.open_comfyui(web_guard.client.url)
    browser_page.page.wait_for_selector(GAUGE, timeout=30_000)
    ui = GuardUI(browser_page.page, browser_page.recorder, request.node.name)
    ui.wait_gauge("running")
    yield ui
    web_guard.client.post("/queue", {"clear": True})
    web_guard.probe.write_low()
