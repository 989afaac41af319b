"""scripts/setup_env.sh itself, run on a stand-in machine: a copy of the script next to a .venv whose
python answers without installing anything, and a PATH that holds every test tool but HAProxy, as a
user who is not root (so nothing is installed with apt-get).

With CI=true the missing tool fails the install step, naming it; without CI it is a warning and the
tests that need it skip."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESENT = ("chromium", "prometheus", "promtool", "prometheus-alertmanager", "amtool", "tini")


def stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def stand_in_machine(tmp_path: Path) -> tuple:
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "setup_env.sh", root / "scripts" / "setup_env.sh")
    for name in ("requirements.txt", "requirements-test.txt"):
        (root / name).write_text("")
    # a .venv python that has torch and installs nothing; comfy-cli already there
    stub(root / ".venv" / "bin" / "python", 'case "$*" in *"print("*) echo torch 0.0-stub ;; esac; exit 0')
    stub(root / ".cache" / "comfy-cli" / "bin" / "comfy", "exit 0")
    tools = tmp_path / "bin"
    for name in PRESENT:
        stub(tools / name, "exit 0")
    stub(tools / "id", "echo 1000")  # not root: the script must not reach for apt-get
    os.symlink(shutil.which("dirname"), tools / "dirname")
    return root, tools


def run_setup(root: Path, tools: Path, ci: bool) -> subprocess.CompletedProcess:
    env = {"PATH": str(tools), "HOME": str(root), "PYTHON": "python3-not-needed"}
    if ci:
        env["CI"] = "true"
    return subprocess.run([shutil.which("bash"), str(root / "scripts" / "setup_env.sh"), "--with-browser"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)


def test_with_ci_true_a_missing_test_tool_fails_the_install_and_names_it(tmp_path):
    root, tools = stand_in_machine(tmp_path)
    result = run_setup(root, tools, ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ERROR: haproxy not found and not root - with CI=true the tests that need haproxy must run" in result.stderr
    assert "FAILED (CI=true)" in result.stderr and "haproxy" in result.stderr.rsplit("FAILED", 1)[1]
    assert "setup_env: ready" not in result.stdout


def test_without_ci_the_same_machine_sets_up_and_says_which_tests_will_skip(tmp_path):
    root, tools = stand_in_machine(tmp_path)
    result = run_setup(root, tools, ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "haproxy not found and not root; the tests that need haproxy will be skipped" in result.stderr
    assert "setup_env: ready (torch 0.0-stub)" in result.stdout


def test_with_ci_true_and_every_tool_present_the_install_passes(tmp_path):
    root, tools = stand_in_machine(tmp_path)
    stub(tools / "haproxy", "exit 0")
    result = run_setup(root, tools, ci=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stderr and "setup_env: ready" in result.stdout
