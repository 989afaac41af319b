"""A test dependency that is missing: a skip on a workstation, an error in CI.

With `CI=true` (set by GitHub Actions and most CI services) a missing Chromium, Prometheus,
Alertmanager, HAProxy or comfy-cli fails the test that needs it, so a broken install step can never
turn into a green run of skipped tests.
"""
from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str) -> None:
    """Skip (or, in CI, fail) the current test because a dependency is not installed."""
    if in_ci():
        pytest.fail(f"{reason} [CI=true: a missing test dependency is an error, not a skip]", pytrace=False)
    pytest.skip(reason)


def venv_tool(name: str, hint: str) -> str:
    """The path of a command a test-only wheel installs beside this interpreter (or on PATH);
    `missing` with `hint` (how to install it) when there is none."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        missing(f"{name} is not installed: {hint}")
    return path
