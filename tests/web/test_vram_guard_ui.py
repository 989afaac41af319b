"""The VRAM guard in ComfyUI's real frontend (headless Chromium), driven by the guard's file probe."""
from __future__ import annotations

import re
import time

import pytest

from tests.gpu_guard.guard_drill import tiny_workflow, wait_until
from tests.web.comfy_ui import DIALOG, GAUGE, plain

pytestmark = [pytest.mark.comfyui, pytest.mark.browser, pytest.mark.slow]


def _luminance(rgb: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", rgb)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg: str, bg: str) -> float:
    """WCAG contrast ratio of two CSS rgb() colours."""
    hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def gauge_colours(page) -> dict:
    return page.evaluate(f"""() => {{
        const css = (sel, prop) => getComputedStyle(document.querySelector('{GAUGE} ' + sel)).getPropertyValue(prop);
        const gauge = document.querySelector('{GAUGE}');
        return {{ value: css('.vg-value', 'color'), background: getComputedStyle(gauge).backgroundColor,
                  menu: getComputedStyle(gauge.parentElement).backgroundColor || '',
                  state: css('.vg-state', 'color'), stateBg: css('.vg-state', 'background-color') }};
    }}""")


def check_readable_in_both_themes(ui, label: str) -> None:
    """Screenshots of the page and of the top bar in the dark and the light palette; the gauge's
    text must keep a readable contrast (WCAG) against its background in both."""
    for palette in ("dark", "light"):
        ui.set_setting("Comfy.ColorPalette", palette)
        ui.page.wait_for_timeout(400)
        colours = gauge_colours(ui.page)
        ui.screenshot(f"{label}-{palette}")
        ui.screenshot(f"{label}-{palette}-topbar", clip=ui.page.locator(".actionbar-container").bounding_box())
        assert contrast(colours["value"], colours["background"]) >= 4.5, (palette, colours)
        assert contrast(colours["state"], colours["stateBg"]) >= 3.0, (palette, colours)
    ui.set_setting("Comfy.ColorPalette", "dark")


def test_gauge_shows_reading_thresholds_and_history_in_both_themes(guard_ui, web_guard):
    web_guard.read_ratio(0.42)
    guard_ui.wait_gauge("running", "42 %")
    assert guard_ui.gauge_label() == "running"
    marks = guard_ui.page.evaluate(f"""() => [...document.querySelectorAll('{GAUGE} .vg-mark')]
        .map(m => [m.className, parseFloat(m.style.left)])""")
    assert sorted(marks) == [["vg-mark vg-mark-pause", 85], ["vg-mark vg-mark-resume", 75]]
    # the sparkline draws the recent readings and both thresholds
    wait_until(lambda: guard_ui.page.locator(f"{GAUGE} .vg-spark-line").count() == 1, 10, what="the sparkline")
    points = guard_ui.page.get_attribute(f"{GAUGE} .vg-spark-line", "points").split()
    assert len(points) >= 2
    assert guard_ui.page.locator(f"{GAUGE} .vg-spark-pause").count() == 1
    assert guard_ui.page.locator(f"{GAUGE} .vg-spark-resume").count() == 1
    # the gauge sits in the top bar, next to the Run button
    assert guard_ui.page.locator(f".actionbar-container {GAUGE}").count() == 1

    check_readable_in_both_themes(guard_ui, "running")
    guard_ui.assert_no_pack_errors()


def test_pause_hold_toast_panel_and_resume_notice(guard_ui, web_guard):
    web_guard.read_ratio(0.90)
    guard_ui.wait_gauge("paused", "90 %")
    assert guard_ui.gauge_label() == "paused · 0 held"
    check_readable_in_both_themes(guard_ui, "paused")

    guard_ui.queue_tiny_graph()
    toast = guard_ui.wait_toast(r"Prompt queued")
    assert "above 85 %" in toast and "number 1 of 1" in toast and "start by itself" in toast, toast
    assert "below 75 %" in toast, toast
    held = web_guard.held_ids()
    assert len(held) == 1
    wait_until(lambda: guard_ui.gauge_label() == "paused · 1 held", 10, what="the gauge to count the held prompt")

    # the held prompts panel lists it, from this browser, with its wait and cost
    guard_ui.page.click(GAUGE)
    row = guard_ui.page.locator(f".vram-guard-panel tr[data-prompt-id='{held[0]}']")
    row.wait_for(timeout=10_000)
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "1" and cells[2] == "this browser", cells
    assert re.fullmatch(r"\d+ s", cells[3]), cells
    assert cells[4] in ("unknown", "estimating") or re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB|TiB)", cells[4]), cells

    # a prompt from another client is listed but brings this browser no notice
    other = web_guard.client.post_prompt(tiny_workflow(color=7), client_id="another-client")
    other_row = guard_ui.page.locator(f".vram-guard-panel tr[data-prompt-id='{other}']")
    other_row.wait_for(timeout=10_000)
    assert other_row.locator("td").all_inner_texts()[:3] == ["2", other[:8], "another client"]
    guard_ui.page.wait_for_timeout(500)
    assert sum("Prompt queued" in t for t in guard_ui.toasts()) == 1, guard_ui.toasts()
    guard_ui.screenshot("held")

    web_guard.read_ratio(0.50)
    toast = guard_ui.wait_toast(r"GPU memory available")
    assert "below 75 %" in toast and "1 held prompt will start" in toast, toast
    guard_ui.wait_gauge("running", "50 %")
    for prompt_id in (held[0], other):
        web_guard.client.wait_history(prompt_id, timeout=60)
    guard_ui.screenshot("resumed")
    guard_ui.assert_no_pack_errors()


def test_full_hold_queue_shows_busy_message_not_the_generic_error(guard_ui, web_guard):
    web_guard.set_config(max_held=1)
    web_guard.read_ratio(0.90)
    guard_ui.wait_gauge("paused")
    guard_ui.queue_tiny_graph()
    guard_ui.wait_toast(r"Prompt queued")
    guard_ui.queue_tiny_graph()  # the hold queue is full now: /prompt answers 429
    toast = guard_ui.wait_toast(r"Server busy")
    retry = web_guard.config()["retry_after_s"]
    assert "not queued" in toast and "hold queue is full" in toast and f"again in {retry} s" in toast, toast
    assert "Prompt execution failed" not in guard_ui.error_dialog_text()
    assert any(e.kind == "http" and e.text.startswith("429") for e in guard_ui.recorder.entries)
    assert len(web_guard.held_ids()) == 1
    guard_ui.screenshot("busy")
    guard_ui.assert_no_pack_errors()


def test_settings_round_trip_to_the_guard_config(guard_ui, web_guard):
    # the dialog shows the server's values
    wait_until(lambda: guard_ui.setting("VRAMGuard.PauseAt") == 85, 10, what="PauseAt loaded from the server")
    assert guard_ui.setting("VRAMGuard.FastLane") is True
    # a change in the dialog is written to the guard
    guard_ui.set_setting("VRAMGuard.PauseAt", 90)
    wait_until(lambda: web_guard.config()["pause_at"] == 0.9, 10, what="pause_at 0.9 on the server")
    guard_ui.set_setting("VRAMGuard.HoldTimeoutAction", "fail")
    guard_ui.set_setting("VRAMGuard.FastLane", False)
    wait_until(lambda: (lambda c: c["hold_timeout_action"] == "fail" and c["fast_lane"] is False)(web_guard.config()),
               10, what="hold_timeout_action and fast_lane on the server")
    # a change made elsewhere reaches the dialog
    web_guard.set_config(resume_at=0.7)
    wait_until(lambda: guard_ui.setting("VRAMGuard.ResumeAt") == 70, 15, what="ResumeAt 70 from the server")
    # a refused value: its reason is shown and the dialog goes back to the server's value
    guard_ui.set_setting("VRAMGuard.ResumeAt", 95)
    toast = guard_ui.wait_toast(r"not changed")
    assert "resume_at" in toast and "pause_at" in toast, toast
    wait_until(lambda: guard_ui.setting("VRAMGuard.ResumeAt") == 70, 10, what="ResumeAt back to 70")
    assert web_guard.config()["resume_at"] == 0.7
    guard_ui.screenshot("settings-refused")
    guard_ui.assert_no_pack_errors(expected_http=((400, "/gpu_guard/config"),))


def setting_input(dialog, setting_id: str):
    """The input of a setting in the settings dialog (1.32 puts the id on a wrapper, newer on the input)."""
    return dialog.locator(f"[id='{setting_id}'] input, input[id='{setting_id}']").first


def test_settings_dialog_edits_the_guard_and_shows_pinned_settings_read_only(guard_ui, web_guard):
    assert "poll_s" in web_guard.config()["pinned"]
    guard_ui.run_command("Comfy.ShowSettingsDialog")
    dialog = guard_ui.page.locator(DIALOG).last
    dialog.wait_for(timeout=10_000)
    dialog.get_by_text("VRAM Guard", exact=True).first.click()
    label = dialog.get_by_text(re.compile(r"Poll interval \(seconds\) \(set by GPU_GUARD_POLL_S\)"))
    label.wait_for(timeout=10_000)
    poll_input = setting_input(dialog, "VRAMGuard.PollSeconds")
    assert poll_input.is_disabled()
    pause_input = setting_input(dialog, "VRAMGuard.PauseAt")
    assert pause_input.is_enabled()
    # typed into the dialog like a person does: the guard takes the new threshold
    pause_input.click()
    pause_input.press("Control+a")
    guard_ui.page.keyboard.type("88")
    pause_input.press("Tab")
    wait_until(lambda: web_guard.config()["pause_at"] == 0.88, 10, what="pause_at 0.88 on the server")
    labels = dialog.locator("[id^='VRAMGuard.']").evaluate_all("els => els.map(e => e.id)")
    assert labels.index("VRAMGuard.PauseAt") < labels.index("VRAMGuard.ResumeAt") < labels.index("VRAMGuard.PollSeconds")
    guard_ui.screenshot("settings-dialog")
    guard_ui.assert_no_pack_errors()


def test_failing_sensor_shows_on_the_gauge_and_as_an_alert(guard_ui, web_guard):
    web_guard.probe.write_text("not json")
    toast = guard_ui.wait_toast(r"sensor is failing")
    assert "failed" in toast, toast
    wait_until(lambda: guard_ui.gauge_state() == "failing", 15, interval=0.1, what="the gauge to show the failing sensor")
    assert guard_ui.gauge_label() == "sensor failing"
    error = web_guard.status()["probe"]["error"]
    assert error and plain(f"Sensor failing: {error}") in guard_ui.gauge_tooltip()
    guard_ui.screenshot("sensor-failing")
    web_guard.read_ratio(0.3)
    guard_ui.wait_gauge("running", "30 %")
    guard_ui.assert_no_pack_errors()


def test_a_rescued_prompt_shows_the_oom_notice_not_the_error_dialog(guard_ui, web_guard):
    from tests.gpu_guard.test_oom_rescue import GB, oom_workflow

    client_id = guard_ui.page.evaluate("window.comfyAPI.api.api.clientId")
    # fails for memory; 9.5 GB estimated with 9 GB free: the rescued prompt stays held
    response = web_guard.client.post_prompt_raw(oom_workflow("notice", fail_runs=1, estimate_bytes=int(9.5 * GB)),
                                                client_id=client_id)
    assert response.status_code == 200, response.text
    toast = guard_ui.wait_toast(r"Prompt held: out of GPU memory", timeout=60)
    assert "ran out of GPU memory; held and will run again when 9.5 GB is free in OomDrillRun (rescue 1 of 2)" \
        in toast, toast
    time.sleep(1.0)  # ComfyUI's dialog would have come with the execution_error, before the notice
    assert "out of memory" not in guard_ui.error_dialog_text().lower()
    guard_ui.screenshot("oom_rescue")
    guard_ui.assert_no_pack_errors()
