"""install(): idempotent, lazy when ComfyUI's server or queue is not up at import, harmless outside
ComfyUI. ComfyUI's `server` module is replaced by a small one with the attributes install() reads."""
import sys
import time
import types

import pytest
from aiohttp import web

import gpu_guard.comfy as adapter_module
from tests.gpu_guard.stand_in_queue import StandInPromptQueue
from tests.harness.probe_file import ProbeFile


class FakePromptServer:
    """PromptServer's surface that the adapter touches: prompt_queue, app, routes, send_sync."""

    instance = None

    def __init__(self, with_queue=True):
        self.prompt_queue = StandInPromptQueue() if with_queue else None
        self.app = web.Application()
        self.routes = web.RouteTableDef()
        self.sent = []

    def send_sync(self, event, data, sid=None):
        self.sent.append((event, data, sid))


@pytest.fixture
def comfy_server_module(monkeypatch, tmp_path):
    probe = ProbeFile(tmp_path / "probe.json")
    probe.write_ratio(0.1)
    monkeypatch.setenv("GPU_GUARD_PROBE", probe.spec)
    monkeypatch.setattr(adapter_module, "_state", {"adapter": None, "installing": False})
    monkeypatch.setattr(adapter_module, "LAZY_POLL_S", 0.01)
    monkeypatch.setattr(FakePromptServer, "instance", None)
    module = types.ModuleType("server")
    module.PromptServer = FakePromptServer
    monkeypatch.setitem(sys.modules, "server", module)
    yield
    installed = adapter_module.installed_adapter()
    if installed is not None:
        installed.guard.stop()


async def answer(request):
    return web.Response()


def route_paths(server):
    return sorted((r.method, r.path) for r in server.routes)


def wait_installed(timeout=5.0):
    deadline = time.monotonic() + timeout
    while adapter_module.installed_adapter() is None:
        assert time.monotonic() < deadline, "the lazy install never happened"
        time.sleep(0.01)
    return adapter_module.installed_adapter()


def test_install_hooks_everything_once(comfy_server_module):
    server = FakePromptServer.instance = FakePromptServer()
    first = adapter_module.install()
    assert first is not None and first.guard.state == "running"
    assert first.attached == ["journal", "queue hook", "oom rescue", "prompt admission", "routes", "websocket events",
                              "operations"]
    assert server.prompt_queue.get == first.hook.get
    assert ("GET", "/gpu_guard/status") in route_paths(server) and ("POST", "/gpu_guard/config") in route_paths(server)
    assert len(server.app.middlewares) == 1
    routes = len(list(server.routes))

    assert adapter_module.install() is first, "a second install() must not install again"
    assert len(server.app.middlewares) == 1 and len(list(server.routes)) == routes


def test_install_waits_for_the_server_and_its_queue(comfy_server_module):
    assert adapter_module.install() is None  # nothing there yet: a daemon thread waits
    assert adapter_module.install() is None  # ... and only one thread
    server = FakePromptServer(with_queue=False)
    FakePromptServer.instance = server
    time.sleep(0.1)
    assert adapter_module.installed_adapter() is None, "no queue yet: nothing to hook"
    server.prompt_queue = StandInPromptQueue()
    installed = wait_installed()
    assert server.prompt_queue.get == installed.hook.get
    assert ("GET", "/gpu_guard/ready") in route_paths(server)  # add_routes() has not run yet


def test_late_install_after_comfyui_copied_its_routes_goes_straight_to_the_router(comfy_server_module):
    assert adapter_module.install() is None
    server = FakePromptServer()
    server.app.router.add_post("/prompt", answer)  # what add_routes() did
    FakePromptServer.instance = server
    wait_installed()
    paths = {resource.canonical for resource in server.app.router.resources()}
    assert {"/gpu_guard/status", "/api/gpu_guard/status", "/gpu_guard/config", "/api/gpu_guard/config"} <= paths
    assert list(server.routes) == []


def test_outside_comfyui_install_does_nothing(monkeypatch):
    monkeypatch.setattr(adapter_module, "_state", {"adapter": None, "installing": False})
    monkeypatch.setitem(sys.modules, "server", None)  # `import server` raises ImportError
    assert adapter_module.install() is None
    assert adapter_module._state["installing"] is False
