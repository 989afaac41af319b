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
