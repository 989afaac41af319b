"""Drives the VRAM guard's frontend extension inside ComfyUI's real frontend (Playwright page)."""
from __future__ import annotations

import re
from pathlib import Path

from tests.gpu_guard.guard_drill import wait_until
from tests.harness.artifacts import artifact_dir
from tests.harness.browser import PageRecorder

# A graph that needs no model (UI format, as the frontend loads it): an 8x8 image, previewed.
TINY_GRAPH = {
    "last_node_id": 2, "last_link_id": 1, "groups": [], "config": {}, "extra": {}, "version": 0.4,
    "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    "nodes": [
        {"id": 1, "type": "EmptyImage", "pos": [80, 120], "size": [300, 130], "flags": {}, "order": 0, "mode": 0,
         "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "properties": {},
         "widgets_values": [8, 8, 1, 0]},
        {"id": 2, "type": "PreviewImage", "pos": [460, 120], "size": [300, 250], "flags": {}, "order": 1, "mode": 0,
         "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [], "properties": {},
         "widgets_values": []},
    ],
}

GAUGE = ".vram-guard-gauge"


def plain(text: str) -> str:
    """The text with runs of whitespace (the UI's no-break spaces included) as one space."""
    return re.sub(r"\s+", " ", text).strip()
# a toast in frontend 1.32 (PrimeVue) and in newer frontends (their own toast list)
TOAST = ".p-toast-message, li[data-toast-kind]"
DIALOG = "[role=dialog]"
APP = "window.comfyAPI.app.app"


class GuardUI:
    """One browser page on ComfyUI with the pack's extension loaded."""

    def __init__(self, page, recorder: PageRecorder, name: str):
        self.page = page
        self.recorder = recorder
        self.name = name

    # -- gauge
    def gauge_state(self) -> str:
        return self.page.get_attribute(GAUGE, "data-state")

    def gauge_value(self) -> str:
        return plain(self.page.inner_text(f"{GAUGE} .vg-value"))

    def gauge_label(self) -> str:
        return plain(self.page.inner_text(f"{GAUGE} .vg-state"))

    def gauge_tooltip(self) -> str:
        return plain(self.page.get_attribute(GAUGE, "title"))

    def wait_gauge(self, state: str, value: str | None = None, timeout: float = 15.0) -> None:
        def shown():
            return self.gauge_state() == state and (value is None or self.gauge_value() == value)
        wait_until(shown, timeout, interval=0.1,
                   what=f"the gauge to show {state} {value or ''} (shows {self.gauge_state()} {self.gauge_value()})")

    # -- toasts
    def toasts(self) -> list[str]:
        return [plain(t) for t in self.page.locator(TOAST).all_inner_texts()]

    def wait_toast(self, pattern: str, timeout: float = 15.0) -> str:
        regex = re.compile(pattern)
        found = wait_until(lambda: next((t for t in self.toasts() if regex.search(t)), None), timeout,
                           interval=0.1, what=f"a toast matching {pattern!r}")
        return found

    # -- app
    def queue_tiny_graph(self) -> None:
        """Loads the tiny graph and presses Queue the way the Run button does (app.queuePrompt)."""
        self.page.evaluate(f"async g => {{ await {APP}.loadGraphData(g); await {APP}.queuePrompt(0, 1); }}", TINY_GRAPH)

    def setting(self, setting_id: str):
        return self.page.evaluate(f"id => {APP}.extensionManager.setting.get(id)", setting_id)

    def set_setting(self, setting_id: str, value) -> None:
        self.page.evaluate(f"([id, v]) => {APP}.extensionManager.setting.set(id, v)", [setting_id, value])

    def run_command(self, command_id: str) -> None:
        self.page.evaluate(f"id => {APP}.extensionManager.command.execute(id)", command_id)

    def error_dialog_text(self) -> str:
        dialogs = self.page.locator(DIALOG).all_inner_texts()
        return " ".join(dialogs)

    # -- evidence
    def screenshot(self, label: str, clip: dict | None = None) -> Path:
        path = artifact_dir("web") / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), clip=clip)
        return path

    def assert_no_pack_errors(self, expected_http: tuple[tuple[int, str], ...] = ()) -> None:
        """No errors from the pack's code; `expected_http` lists (status, path) answers a test provoked
        on purpose (the browser logs each failed request as a console error too)."""
        def provoked(entry) -> bool:
            return any(path in entry.url and (entry.text.startswith(str(status)) or f"status of {status}" in entry.text)
                       for status, path in expected_http)
        errors = [e for e in self.recorder.pack_errors() if not provoked(e)]
        assert not errors, "the pack's frontend code reported errors:\n" + "\n".join(map(str, errors))
