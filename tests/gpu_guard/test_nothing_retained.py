"""Nothing of a prompt stays referenced by the guard after it leaves the queue: 5,000 prompts through
ComfyUI's real PromptQueue (half of them held first, some deleted while held), then ComfyUI's own
history is wiped and not one marker from any graph, extra data or sensitive data is still alive."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.comfyui_install import InstallError, ensure_comfyui

REPO = Path(__file__).resolve().parents[2]
DRILL = Path(__file__).with_name("retention_drill.py")


def test_5000_prompts_leave_nothing_behind(tmp_path):
    try:
        comfy_dir = ensure_comfyui()
    except InstallError as error:
        pytest.skip(f"ComfyUI cannot be installed here: {error}")
    done = subprocess.run([sys.executable, str(DRILL), str(comfy_dir), str(REPO), str(tmp_path / "probe.json"),
                           "5000"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["prompts"] == 5000
    assert result["held_seen"] >= 50 * 49, "the drill must exercise the held set"
    assert result["alive"] == 0, f"markers still referenced after the prompts left: {result}"
