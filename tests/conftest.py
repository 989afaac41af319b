"""Fixtures shared by the whole suite: a real ComfyUI with this pack, and headless Chromium.

comfy            one ComfyUI for the test session (or the server at COMFYUI_URL); its guard reads
                 comfy.probe (a file-driven probe, low reading); a synthetic DDColor checkpoint is
                 in its ddcolor folder as comfy.checkpoint_name
comfy_factory    starts extra servers with their own env and folders; stopped after the test
probe            comfy.probe, reset to the low reading after the test
artifacts        test-artifacts/tests/<test id>/ for what a person should be able to look at
browser_page     a Chromium page that records console messages and page errors
See docs/testing.md.
"""
from __future__ import annotations

import itertools
import os

import pytest

from tests.harness.artifacts import artifact_dir
from tests.harness.client import ComfyClient
from tests.harness.comfyui_install import InstallError, ensure_comfyui
from tests.harness.provision import build_server
from tests.harness.required import missing
from tests.harness.weights import (SYNTHETIC_NAME, WeightsError, cached_kit_checkpoint, kit_dir,
                                   write_synthetic_checkpoint)

COMFY_FIXTURES = {"comfy", "comfy_factory", "probe", "checkpoint_name"}
BROWSER_FIXTURES = {"browser", "browser_page"}


def pytest_collection_modifyitems(items):
    """Marks tests by the fixtures they use, so `-m "not comfyui"` / `-m "not browser"` select."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & COMFY_FIXTURES:
            item.add_marker(pytest.mark.comfyui)
        if names & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item, so fixtures can save more artefacts on failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request) -> bool:
    report = getattr(request.node, "report_call", None)
    return report is None or report.failed


# ---------------------------------------------------------------- ComfyUI


def remote_url() -> str | None:
    return os.environ.get("COMFYUI_URL") or None


def comfyui_dir_or_skip():
    """The ComfyUI that servers run from; skips the test when it cannot be installed."""
    try:
        return ensure_comfyui()
    except InstallError as error:
        pytest.skip(f"ComfyUI cannot be installed here: {error}")


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory):
    """A synthetic tiny DDColor checkpoint, or None when none can be made (servers start without).

    The parity kit's weights, cached between runs; else made by `python -m ddcolor_model synth`.
    """
    try:
        if kit_dir() is not None:
            return cached_kit_checkpoint("tiny")
        out = tmp_path_factory.mktemp("ddcolor-weights") / SYNTHETIC_NAME.format(variant="tiny")
        return write_synthetic_checkpoint(out, "tiny", source="pack")
    except WeightsError as error:
        print(f"conftest: servers start without a DDColor checkpoint: {error}")
        return None


@pytest.fixture(scope="session")
def comfy(request, tmp_path_factory):
    """One ComfyUI with the pack for the whole run; its guard reads comfy.probe (low reading) and its
    ddcolor folder holds the synthetic checkpoint as comfy.checkpoint_name. With COMFYUI_URL: a client
    for that server (no probe, no process, its own first checkpoint)."""
    if remote_url():
        client = ComfyClient(remote_url())
        try:
            client.system_stats()
            # The remote server's own checkpoints; the first one serves the tests that need one.
            listed = client.get_json("/models/ddcolor") if "ddcolor" in client.get_json("/models") else []
        except Exception as error:  # noqa: BLE001 - say which server and why
            pytest.fail(f"COMFYUI_URL={remote_url()} does not answer like a ComfyUI: {error}")
        client.checkpoint_name = listed[0] if listed else None
        yield client
        return
    comfyui_dir_or_skip()
    server = build_server(tmp_path_factory.mktemp("comfy"), name="comfy-main",
                          checkpoint=request.getfixturevalue("synthetic_checkpoint"))
    with server:
        yield server


@pytest.fixture
def comfy_factory(request, tmp_path_factory, synthetic_checkpoint):
    """make(name=None, env=None, probe=True, checkpoint=True, extra_args=(), pack_root=None, start=True,
    **server_options) -> a ComfyServer, started unless start=False.

    Each server has its own folders, its own probe file (unless env sets GPU_GUARD_PROBE) and the
    synthetic checkpoint (checkpoint=False: none); pack_root installs another folder as the pack
    (default: this repo); server_options go to ComfyServer (e.g. cpu=False to let ComfyUI use a GPU).
    All are stopped after the test.
    """
    if remote_url():
        pytest.skip("COMFYUI_URL is set: tests that start their own ComfyUI are skipped")
    comfyui_dir_or_skip()
    started = []
    counter = itertools.count(1)

    def make(name=None, env=None, probe=True, checkpoint=True, extra_args=(), pack_root=None, start=True,
             **server_options):
        name = name or f"{request.node.module.__name__.rsplit('.', 1)[-1]}-{request.node.name}-{next(counter)}"
        server = build_server(tmp_path_factory.mktemp("comfy"), name=name, env=env, probe=probe,
                              checkpoint=synthetic_checkpoint if checkpoint else None,
                              extra_args=tuple(extra_args), pack_root=pack_root, **server_options)
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def probe(comfy):
    """The main server's probe file; back to the low reading after the test."""
    if comfy.probe is None:
        pytest.skip("the server at COMFYUI_URL is not driven by this harness's probe file")
    yield comfy.probe
    comfy.probe.write_low()


@pytest.fixture
def checkpoint_name(comfy):
    """The name of a DDColor checkpoint the main server lists; skips when there is none."""
    if comfy.checkpoint_name is None:
        pytest.skip("no DDColor checkpoint on the server: synthetic weights could not be made, or the "
                    "server at COMFYUI_URL lists none in its ddcolor folder")
    return comfy.checkpoint_name


@pytest.fixture
def artifacts(request):
    """test-artifacts/tests/<test id>/: kept after the run for people to look at."""
    return artifact_dir("tests", request.node.nodeid)


# ---------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser():
    from tests.harness.browser import chromium_path, launch_chromium

    if chromium_path() is None:
        missing("chromium is not installed (scripts/setup_env.sh --with-browser installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (requirements-test.txt)")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def browser_page(request, browser, artifacts):
    """A fresh page (own context) that records console messages, page errors and failed requests.

    After the test its console is saved to the test's artefact folder, with a screenshot on failure.
    """
    from tests.harness.browser import BrowserPage, PageRecorder

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    wrapped = BrowserPage(page, PageRecorder().attach(page), artifacts)
    yield wrapped
    try:
        if _failed(request):
            wrapped.screenshot("on-failure")
        wrapped.save_console()
    finally:
        context.close()
