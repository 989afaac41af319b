"""A probe driven by a JSON file, for drills and tests: {"used_bytes": N, "total_bytes": M}.

The file is read at every poll; write it atomically (write a temporary file, then rename) so that a
poll never sees half a file. An optional "reclaimable_bytes" key feeds the reclaimable measure.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable

from .reading import ProbeError, Reading

_SHAPE = '{"used_bytes": N, "total_bytes": M}'


def byte_count(data: dict, key: str, path: str, shape: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ProbeError(f"probe file {path}: {key} must be a whole number of bytes, got {value!r}; "
                         f"write {shape}")
    if value < 0:
        raise ProbeError(f"probe file {path}: {key} must not be negative, got {value}")
    return int(value)


class JsonFile:
    """The JSON object in a file that is replaced atomically, parsed and checked (`figures(data)`) again
    only when the file changed: the worker reads at every dispatch, and one stat costs a fraction of
    open, read, parse and check (bench/bench_queue_hook.py). A rename gives a new inode, so a replaced
    file is always seen. A file that fails the check is read again at every call until it is fixed."""

    def __init__(self, path: str, shape: str, required: tuple, figures: Callable[[dict], tuple]):
        self.path, self.shape, self.required, self._figures_of = path, shape, required, figures
        self._cached = (None, None)  # (inode, mtime, size) of the file as parsed, its figures

    def read(self) -> tuple:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise ProbeError(f"probe file {self.path} does not exist; create it with {self.shape}") from None
        except OSError as e:
            raise ProbeError(f"probe file {self.path} cannot be read: {e}") from None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached_key, figures = self._cached  # one tuple: the poll thread and the worker read concurrently
        if key != cached_key:
            figures = self._figures_of(read_json_object(self.path, self.shape, self.required))
            self._cached = (key, figures)
        return figures


def read_json_object(path: str, shape: str, required: tuple) -> dict:
    """The JSON object in `path` with the `required` keys, or a ProbeError naming the fix."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ProbeError(f"probe file {path} does not exist; create it with {shape}") from None
    except OSError as e:
        raise ProbeError(f"probe file {path} cannot be read: {e}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ProbeError(f"probe file {path} is not JSON ({e}); write {shape}") from None
    if not isinstance(data, dict):
        raise ProbeError(f"probe file {path} must hold a JSON object like {shape}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ProbeError(f"probe file {path} lacks {', '.join(missing)}; write {shape}")
    return data


class FileProbe:
    def __init__(self, path: str, wall: Callable[[], float] = time.time):
        self.path = path
        self.name = f"file:{path}"
        self._wall = wall
        self._file = JsonFile(path, _SHAPE, ("used_bytes", "total_bytes"), self._figures)

    def _figures(self, data: dict) -> tuple:
        used = byte_count(data, "used_bytes", self.path, _SHAPE)
        total = byte_count(data, "total_bytes", self.path, _SHAPE)
        reclaimable = byte_count(data, "reclaimable_bytes", self.path, _SHAPE) if "reclaimable_bytes" in data else 0
        if total == 0:
            raise ProbeError(f"probe file {self.path}: total_bytes must be > 0")
        if used > total:
            raise ProbeError(f"probe file {self.path}: used_bytes ({used}) exceeds total_bytes ({total})")
        if reclaimable > used:
            raise ProbeError(f"probe file {self.path}: reclaimable_bytes ({reclaimable}) exceeds "
                             f"used_bytes ({used})")
        return used, total, reclaimable

    def read(self) -> Reading:
        used, total, reclaimable = self._file.read()
        return Reading(used, total, reclaimable, self._wall())
