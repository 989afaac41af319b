"""Headless Chromium on ComfyUI's real frontend, with the pack's extension modules loaded."""
from PIL import Image

from tests.harness.browser import ConsoleEntry, PageRecorder
from tests.harness.server import PACK_NAME, REPO_ROOT


def test_recorder_attributes_errors_to_the_pack_by_file_or_route():
    recorder = PageRecorder(entries=[
        ConsoleEntry("error", "TypeError: x is undefined", f"http://h/extensions/{PACK_NAME}/vram_guard.js"),
        ConsoleEntry("http", "500 GET", "http://h/api/gpu_guard/status"),
        ConsoleEntry("error", "TypeError: Cannot read properties of undefined", "http://h/assets/index.js"),
        ConsoleEntry("warning", f"deprecated API used by /extensions/{PACK_NAME}/a.js"),
        ConsoleEntry("log", "hello"),
    ])
    assert [e.url for e in recorder.pack_errors()] == [
        f"http://h/extensions/{PACK_NAME}/vram_guard.js", "http://h/api/gpu_guard/status"]
    assert len(recorder.errors()) == 3


def test_frontend_loads_with_the_pack_without_page_errors(comfy, browser_page):
    browser_page.open_comfyui(comfy.url)
    assert browser_page.page.evaluate("() => window.app.graph._nodes.length") >= 0
    assert browser_page.recorder.page_errors == [], browser_page.recorder.report()
    assert browser_page.recorder.pack_errors() == [], browser_page.recorder.report()
    shipped = {p.relative_to(REPO_ROOT / "web").as_posix() for p in (REPO_ROOT / "web").rglob("*.js")}
    prefix = f"{comfy.url}/extensions/{PACK_NAME}/"
    loaded = {u[len(prefix):] for u in browser_page.recorder.loaded_urls if u.startswith(prefix)}
    # The frontend imports every .js that /extensions lists; submodules may also be imported by them.
    assert shipped <= loaded, f"pack modules not loaded by the frontend: {sorted(shipped - loaded)}"
    path = browser_page.screenshot("frontend-loaded")
    with Image.open(path) as shot:
        assert shot.format == "PNG" and shot.size == (1400, 900)
