"""A probe driven by a JSON file, for drills and tests: {"used_bytes": N, "total_bytes": M}.

The file is read at every poll; write it atomically (write a temporary file, then rename) so that a
poll never sees half a file. An optional "reclaimable_bytes" key feeds the reclaimable measure.
"""
from __future__ import annotations

import json
import time
from typing import Callable

from .reading import ProbeError, Reading

_SHAPE = '{"used_bytes": N, "total_bytes": M}'


def _byte_count(data: dict, key: str, path: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ProbeError(f"probe file {path}: {key} must be a whole number of bytes, got {value!r}; "
                         f"write {_SHAPE}")
    if value < 0:
        raise ProbeError(f"probe file {path}: {key} must not be negative, got {value}")
    return int(value)


class FileProbe:
    def __init__(self, path: str, wall: Callable[[], float] = time.time):
        self.path = path
        self.name = f"file:{path}"
        self._wall = wall

    def read(self) -> Reading:
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise ProbeError(f"probe file {self.path} does not exist; create it with {_SHAPE}") from None
        except OSError as e:
            raise ProbeError(f"probe file {self.path} cannot be read: {e}") from None
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ProbeError(f"probe file {self.path} is not JSON ({e}); write {_SHAPE}") from None
        if not isinstance(data, dict):
            raise ProbeError(f"probe file {self.path} must hold a JSON object like {_SHAPE}")
        missing = [k for k in ("used_bytes", "total_bytes") if k not in data]
        if missing:
            raise ProbeError(f"probe file {self.path} lacks {', '.join(missing)}; write {_SHAPE}")
        used = _byte_count(data, "used_bytes", self.path)
        total = _byte_count(data, "total_bytes", self.path)
        reclaimable = _byte_count(data, "reclaimable_bytes", self.path) if "reclaimable_bytes" in data else 0
        if total == 0:
            raise ProbeError(f"probe file {self.path}: total_bytes must be > 0")
        if used > total:
            raise ProbeError(f"probe file {self.path}: used_bytes ({used}) exceeds total_bytes ({total})")
        if reclaimable > used:
            raise ProbeError(f"probe file {self.path}: reclaimable_bytes ({reclaimable}) exceeds "
                             f"used_bytes ({used})")
        return Reading(used, total, reclaimable, self._wall())
