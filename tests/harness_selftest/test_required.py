"""A missing test dependency skips on a workstation and fails with CI=true (tests/harness/required.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

NEEDS_A_TOOL = '''
import shutil
from tests.harness.required import missing

def test_needs_a_tool():
    if shutil.which("no-such-tool-gpu-guard") is None:
        missing("no-such-tool-gpu-guard is not installed")
'''


def run_pytest(tmp_path, ci):
    test_file = tmp_path / "test_needs_a_tool.py"
    test_file.write_text(NEEDS_A_TOOL)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(test_file)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_missing_tool_skips_on_a_workstation(tmp_path):
    result = run_pytest(tmp_path, None)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout and "no-such-tool-gpu-guard is not installed" in result.stdout


def test_a_missing_tool_fails_in_ci(tmp_path):
    result = run_pytest(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout and "CI=true: a missing test dependency is an error" in result.stdout
