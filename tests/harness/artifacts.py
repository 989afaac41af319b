"""Where tests keep what a person looks at after a run: server logs, screenshots, outputs."""
from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def artifacts_root() -> Path:
    """`TEST_ARTIFACTS_DIR`, else test-artifacts/ in the repo root (ignored by git, kept by CI)."""
    return Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO_ROOT / "test-artifacts").resolve()


def artifact_dir(*parts: str) -> Path:
    """A folder under the artefacts root, created; each part is made safe as a file name."""
    path = artifacts_root().joinpath(*(safe_name(p) for p in parts))
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(text: str) -> str:
    """A file-name-safe form of a test id such as `tests/x.py::test_y[param]`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120] or "unnamed"
