"""The operator's pause/resume button in the held-prompts panel, in ComfyUI's real frontend."""
from __future__ import annotations

import pytest

from tests.gpu_guard.guard_drill import wait_until
from tests.web.comfy_ui import GAUGE

pytestmark = [pytest.mark.comfyui, pytest.mark.browser, pytest.mark.slow]

BUTTON = ".vram-guard-panel .vg-operator-toggle"


@pytest.fixture
def panel(guard_ui, web_guard):
    """The held-prompts panel open; the operator's pause is ended afterwards."""
    guard_ui.page.click(GAUGE)
    guard_ui.page.locator(".vram-guard-panel").wait_for(timeout=10_000)
    yield guard_ui
    web_guard.client.post("/gpu_guard/resume", {})


def test_pause_and_resume_from_the_panel_hold_and_release_as_a_memory_pause_does(panel, web_guard):
    ui = panel
    button = ui.page.locator(BUTTON)
    button.wait_for(timeout=10_000)
    assert button.inner_text() == "Pause prompts"
    button.click()
    wait_until(lambda: web_guard.status()["operator_pause"], 10, what="the operator pause on the server")
    assert web_guard.status()["operator_pause"]["by"] == "web UI"
    ui.wait_gauge("paused")
    wait_until(lambda: button.inner_text() == "Resume prompts", 10, what="the button to offer resume")
    assert "Paused by web UI at" in ui.page.inner_text(".vram-guard-panel .vg-operator-note")

    ui.queue_tiny_graph()
    toast = ui.wait_toast(r"Prompt queued: the server is paused")
    assert "Paused by web UI" in toast and "once the server is resumed" in toast, toast
    wait_until(lambda: len(web_guard.held_ids()) == 1, 10, what="the prompt held")
    (held,) = web_guard.held_ids()
    row = ui.page.locator(f".vram-guard-panel tr[data-prompt-id='{held}']")
    row.wait_for(timeout=10_000)
    assert row.locator("td").all_inner_texts()[5] == "normal"
    assert web_guard.pending_ids() == [held]  # queued and visible in ComfyUI's queue, as in a memory pause
    ui.screenshot("operator-paused")

    button.click()
    toast = ui.wait_toast(r"Server resumed")
    assert "operator's pause ended" in toast and "1 held prompt will start" in toast, toast
    web_guard.client.wait_history(held, timeout=60)
    ui.wait_gauge("running")
    wait_until(lambda: button.inner_text() == "Pause prompts", 10, what="the button to offer pause again")
    assert web_guard.status()["operator_pause"] is None
    ui.assert_no_pack_errors()


def test_the_button_is_hidden_from_a_user_who_may_not_change_the_config(guard_ui, web_guard):
    """Through a proxy (X-Forwarded-For) the loopback exemption does not apply: no button."""
    page = guard_ui.page
    page.set_extra_http_headers({"X-Forwarded-For": "203.0.113.7"})
    page.reload()
    page.wait_for_selector(GAUGE, timeout=30_000)
    answer = page.evaluate("async () => (await (await fetch('/gpu_guard/operator')).json())")
    assert answer["can_change"] is False and "came through a proxy" in answer["why_not"]
    page.click(GAUGE)
    page.locator(".vram-guard-panel").wait_for(timeout=10_000)
    page.wait_for_timeout(500)
    assert page.locator(BUTTON).count() == 0
