"""The pack's version (one source: pyproject.toml) in GET /gpu_guard/status and in the settings dialog."""
from __future__ import annotations

import pytest

from gpu_guard.pack_version import VERSION
from tests.web.comfy_ui import DIALOG

pytestmark = [pytest.mark.comfyui, pytest.mark.browser]


def test_settings_dialog_shows_the_version_of_the_status(guard_ui, web_guard):
    assert VERSION and web_guard.client.get_json("/gpu_guard/status")["version"] == VERSION
    guard_ui.run_command("Comfy.ShowSettingsDialog")
    dialog = guard_ui.page.locator(DIALOG).last
    dialog.wait_for(timeout=10_000)
    dialog.get_by_text("VRAM Guard", exact=True).first.click()
    dialog.get_by_text(f"Pack version {VERSION}", exact=True).wait_for(timeout=10_000)
    version_input = dialog.locator("[id='VRAMGuard.PackVersion'] input, input[id='VRAMGuard.PackVersion']").first
    assert version_input.is_disabled()
    guard_ui.screenshot("settings-version")
    guard_ui.assert_no_pack_errors()
