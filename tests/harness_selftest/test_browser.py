"""Headless Chromium on ComfyUI's real frontend, with the pack's extension modules loaded."""
from PIL import Image

from tests.harness.server import PACK_NAME, REPO_ROOT


def test_frontend_loads_with_the_pack_without_page_errors(comfy, browser_page):
    browser_page.open_comfyui(comfy.url)
    assert browser_page.page.evaluate("() => window.app.graph._nodes.length") >= 0
    assert browser_page.recorder.page_errors == [], browser_page.recorder.report()
    shipped = {p.relative_to(REPO_ROOT / "web").as_posix() for p in (REPO_ROOT / "web").rglob("*.js")}
    prefix = f"{comfy.url}/extensions/{PACK_NAME}/"
    loaded = {u[len(prefix):] for u in browser_page.recorder.loaded_urls if u.startswith(prefix)}
    # The frontend imports every .js that /extensions lists; submodules may also be imported by them.
    assert shipped <= loaded, f"pack modules not loaded by the frontend: {sorted(shipped - loaded)}"
    path = browser_page.screenshot("frontend-loaded")
    with Image.open(path) as shot:
        assert shot.format == "PNG" and shot.size == (1400, 900)
