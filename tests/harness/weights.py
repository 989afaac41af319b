"""Synthetic DDColor checkpoints for servers that have no official one.

Synthetic weights have the exact layout of a released checkpoint (so the loader, the nodes and the
guard see a real model), but they were never trained: their colours mean nothing. They come from the
parity kit (`../shared/ddcolor/make_weights.py` relative to the repo root) when it is there, else from
the pack's own `python -m ddcolor_model synth`.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from .artifacts import REPO_ROOT
from .comfyui_install import cache_root

SYNTHETIC_NAME = "ddcolor_synthetic_{variant}.pth"


class WeightsError(RuntimeError):
    """Synthetic weights could not be made; the message says why and what to do."""


def kit_dir() -> Path | None:
    """The DDColor parity kit next to the repo (CI checks it out at ../shared/ddcolor)."""
    path = (REPO_ROOT.parent / "shared" / "ddcolor").resolve()
    return path if (path / "make_weights.py").is_file() else None


def _synth_command(variant: str, out: Path, source: str) -> list[str]:
    kit = kit_dir()
    if source == "kit" and kit is not None:
        return [sys.executable, str(kit / "make_weights.py"), variant, str(out)]
    if (REPO_ROOT / "ddcolor_model" / "__main__.py").is_file():
        return [sys.executable, "-m", "ddcolor_model", "synth", variant, str(out)]
    if kit is not None:
        return [sys.executable, str(kit / "make_weights.py"), variant, str(out)]
    raise WeightsError("no way to make synthetic DDColor weights: neither the parity kit "
                       f"({REPO_ROOT.parent / 'shared' / 'ddcolor'}) nor `python -m ddcolor_model synth` is there")


def write_synthetic_checkpoint(out: str | Path, variant: str = "tiny", source: str = "kit") -> Path:
    """Writes a synthetic checkpoint of `variant` ("tiny": 220 MB, "large": 912 MB) to `out`.

    source "kit": the parity kit's weights when the kit is there (what the parity tests know);
    "pack": `python -m ddcolor_model synth`, whose files carry a marker that labels outputs as synthetic.
    Each falls back to the other. The file appears only when complete (temporary name, then rename).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")  # concurrent runs never share one
    command = _synth_command(variant, partial, source)
    result = subprocess.run(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise WeightsError(f"making synthetic weights failed (exit {result.returncode}): "
                           f"{' '.join(command)}\n{result.stdout[-3000:]}")
    os.replace(partial, out)
    return out


def cached_kit_checkpoint(variant: str = "tiny") -> Path:
    """The kit's synthetic checkpoint, made once and kept in the ComfyUI cache folder.

    Keyed by the kit's generator and key list, so a changed kit makes a new file.
    """
    kit = kit_dir()
    if kit is None:
        raise WeightsError(f"the DDColor parity kit is not at {REPO_ROOT.parent / 'shared' / 'ddcolor'}")
    digest = hashlib.sha256((kit / "make_weights.py").read_bytes()
                            + (kit / f"keys_{variant}.json").read_bytes()).hexdigest()[:16]
    path = cache_root() / "synthetic-weights" / digest / SYNTHETIC_NAME.format(variant=variant)
    if not path.is_file():
        write_synthetic_checkpoint(path, variant, source="kit")
    return path


def place_checkpoint(source: str | Path, models_dir: str | Path, name: str | None = None) -> Path:
    """Puts `source` into a server's model folder as a hard link (a symlink across file systems)."""
    source = Path(source)
    target = Path(models_dir) / (name or source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return target
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source.resolve())  # another file system: ComfyUI follows links
    return target
