"""Fixtures for the frontend tests: a real ComfyUI whose VRAM guard reads a probe file, and a headless
Chromium page on ComfyUI's real frontend with this pack's extension loaded.

The guard polls every 100 ms (pinned by GPU_GUARD_POLL_S, which the settings tests also use to check
how a pinned setting is shown). Each test gets a fresh page and a guard reset to its defaults.
"""
from __future__ import annotations

import os

import pytest

from tests.gpu_guard.guard_drill import GuardDrill
from tests.harness.probe_file import ProbeFile
from tests.harness.server import ComfyServer
from tests.web.comfy_ui import GAUGE, GuardUI

DEFAULTS = dict(pause_at=0.85, resume_at=0.75, max_held=0, hold_timeout_s=0, hold_timeout_action="keep",
                fast_lane=True)


@pytest.fixture(scope="session")
def web_guard(tmp_path_factory):
    """A ComfyUI started for the frontend tests, with its probe file (a GuardDrill)."""
    if os.environ.get("COMFYUI_URL"):
        pytest.skip("the frontend tests drive the probe file of a server they start; "
                    "COMFYUI_URL points at a server this suite does not own")
    base = tmp_path_factory.mktemp("web_comfy")
    probe = ProbeFile(base / "probe.json")
    probe.write_ratio(0.10)
    server = ComfyServer(base / "server", name="web",
                         env={"GPU_GUARD_PROBE": probe.spec, "GPU_GUARD_POLL_S": "0.1"}).start()
    yield GuardDrill(server, probe)
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.harness.browser import chromium_path, launch_chromium

    if chromium_path() is None:
        pytest.skip("chromium is not installed (scripts/setup_env.sh --with-browser installs it)")
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def guard_ui(request, web_guard, chromium):
    """A fresh page on ComfyUI, the guard running with its default settings and an empty queue."""
    from tests.harness.browser import PageRecorder, open_comfyui

    web_guard.client.post("/queue", {"clear": True})
    web_guard.set_config(**DEFAULTS)
    web_guard.resume()
    context = chromium.new_context(viewport={"width": 1400, "height": 820})
    page = context.new_page()
    recorder = PageRecorder().attach(page)
    open_comfyui(page, web_guard.client.url)
    page.wait_for_selector(GAUGE, timeout=30_000)
    ui = GuardUI(page, recorder, request.node.name)
    ui.wait_gauge("running")
    yield ui
    context.close()
    web_guard.client.post("/queue", {"clear": True})
    web_guard.probe.write_ratio(0.10)
