"""Synthetic DDColor checkpoints for servers that have no official one.

Synthetic weights have the exact layout of a released checkpoint (so the loader, the nodes and the
guard see a real model), but they were never trained: their colours mean nothing. They come from the
parity kit (`../shared/ddcolor/make_weights.py` relative to the repo root) when it is there, else from
the pack's own `python -m ddcolor_model synth`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .artifacts import REPO_ROOT

SYNTHETIC_NAME = "ddcolor_synthetic_{variant}.pth"


class WeightsError(RuntimeError):
    """Synthetic weights could not be made; the message says why and what to do."""


def kit_dir() -> Path | None:
    """The DDColor parity kit next to the repo (CI checks it out at ../shared/ddcolor)."""
    path = (REPO_ROOT.parent / "shared" / "ddcolor").resolve()
    return path if (path / "make_weights.py").is_file() else None


def _synth_command(variant: str, out: Path) -> list[str]:
    kit = kit_dir()
    if kit is not None:
        return [sys.executable, str(kit / "make_weights.py"), variant, str(out)]
    if (REPO_ROOT / "ddcolor_model" / "__main__.py").is_file():
        return [sys.executable, "-m", "ddcolor_model", "synth", "--variant", variant, str(out)]
    raise WeightsError("no way to make synthetic DDColor weights: neither the parity kit "
                       f"({REPO_ROOT.parent / 'shared' / 'ddcolor'}) nor `python -m ddcolor_model synth` is there")


def write_synthetic_checkpoint(out: str | Path, variant: str = "tiny") -> Path:
    """Writes a synthetic checkpoint of `variant` ("tiny": 220 MB, "large": 912 MB) to `out`.

    The file appears only when complete (written under a temporary name, then renamed).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    command = _synth_command(variant, partial)
    result = subprocess.run(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise WeightsError(f"making synthetic weights failed (exit {result.returncode}): "
                           f"{' '.join(command)}\n{result.stdout[-3000:]}")
    os.replace(partial, out)
    return out


def place_checkpoint(source: str | Path, models_dir: str | Path, name: str | None = None) -> Path:
    """Puts `source` into a server's model folder as a hard link (a copy across file systems)."""
    source = Path(source)
    target = Path(models_dir) / (name or source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return target
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target
