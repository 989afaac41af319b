"""One owner per user directory: which files (journal, event log) this process may use there.

Two ComfyUIs often share one user directory (one install, `--cuda-device 0` and `1`). Sharing the
journal would make each restore and run the other's prompts. So the files are claimed with an
advisory lock (`fcntl.flock` on `gpu_guard.lock`; the kernel drops it when the process dies, kill -9
included), and the lock file records the owner's identity (`cuda-N` when `--cuda-device` is set).

- The default names (`gpu_guard_journal.sqlite3`, `gpu_guard_events.jsonl`) go to the process that
  holds `gpu_guard.lock` and whose identity matches the recorded one (or none was recorded). A process
  without an identity records none, so a single ComfyUI keeps its files across restarts and ports.
- Any other process uses names of its own, `<name>.<identity>` (`cuda-N`, else `port-P`), claimed
  with their own lock: it never opens, restores or deletes another process's prompts. So after a
  reboot, the `--cuda-device 1` instance started first still does not take device 0's journal.
- If even its own names are locked (the same identity twice), it runs without the journal and says so.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; one ComfyUI per user directory is assumed
    fcntl = None

log = logging.getLogger("gpu_guard")

LOCK_NAME = "gpu_guard.lock"


@dataclass(frozen=True)
class Claim:
    suffix: Optional[str]  # "" for the default names, ".<identity>" for own names, None: no files
    note: Optional[str]  # said loudly when the default names could not be used

    def name(self, file_name: str) -> Optional[str]:
        """`gpu_guard_journal.sqlite3` -> `gpu_guard_journal.cuda-1.sqlite3` (None: no files)."""
        if self.suffix is None:
            return None
        stem, dot, ext = file_name.partition(".")
        return f"{stem}{self.suffix}{dot}{ext}"


_claims: dict = {}  # folder -> Claim: one claim per process and folder; the lock files stay open


def identity_of(cuda_device: Optional[int], port: Optional[int]) -> tuple:
    """(recorded identity or "", name for own files)."""
    if cuda_device is not None:
        return f"cuda-{cuda_device}", f"cuda-{cuda_device}"
    return "", f"port-{port}" if port is not None else f"pid-{os.getpid()}"


def claim(folder: str, cuda_device: Optional[int] = None, port: Optional[int] = None) -> Claim:
    folder = os.path.abspath(folder)
    if folder not in _claims:
        _claims[folder] = _claim(folder, *identity_of(cuda_device, port))
    return _claims[folder]


def _claim(folder: str, identity: str, own: str) -> Claim:
    if fcntl is None:
        return Claim("", None)
    try:
        os.makedirs(folder, exist_ok=True)
        handle = _locked(os.path.join(folder, LOCK_NAME))
    except OSError as error:
        return Claim("", f"could not lock {folder} ({error}); the files are used without a lock")
    if handle is not None:
        recorded = handle.read().strip()
        if not recorded or recorded == identity:
            handle.seek(0)
            handle.truncate()
            handle.write(identity)
            handle.flush()
            _keep.append(handle)
            return Claim("", None)
        handle.close()  # the default files belong to another instance (not running now)
        why = f"the default files in {folder} belong to the ComfyUI started as {recorded}"
    else:
        why = f"another ComfyUI holds {os.path.join(folder, LOCK_NAME)}"
    try:
        own_handle = _locked(os.path.join(folder, f"gpu_guard.{own}.lock"))
    except OSError as error:
        own_handle, why = None, f"{why}, and its own lock failed ({error})"
    if own_handle is None:
        note = (f"{why}, and another process uses this one's own names ({own}) too: prompts are NOT "
                "journaled and the event log is off - give each ComfyUI its own --user-directory or "
                "--cuda-device")
        log.error("VRAM guard: %s", note)
        return Claim(None, note)
    _keep.append(own_handle)
    note = f"{why}: this ComfyUI journals and logs under its own names (.{own})"
    log.warning("VRAM guard: %s", note)
    return Claim(f".{own}", note)


_keep: list = []  # open lock files: closing one would drop its lock


def _locked(path: str):
    """The lock file opened and locked (exclusive, non-blocking), or None when another process holds it."""
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    except OSError:
        handle.close()
        raise
    handle.seek(0)
    return handle
