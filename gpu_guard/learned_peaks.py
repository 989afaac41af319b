"""Peaks learned per workflow: what a prompt really took on the device, keyed by its signature.

The signature of a prompt is a hash over its node classes and the inputs that drive memory: numbers
(sizes, batch, strength), switches, and short names (model files, precision, image files); seeds and
free text (anything with whitespace or longer than SHORT_TEXT) are left out, as are links between
nodes. Only the hash is kept: nothing a prompt carries outlives it here.

The table is a bounded LRU (`max_entries`), persisted as JSON next to the journal with an atomic
replace, so a restarted server still knows its workflows. `need_of(prompt)` is the figure the fast
lane and the OOM rescue use: the learned peak when there is one, else the nodes' VRAM_ESTIMATEs,
else unknown.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from typing import Any, Mapping, Optional

from . import estimators

log = logging.getLogger("gpu_guard")

FILE_NAME = "gpu_guard_learned_peaks.json"
FORMAT_VERSION = 1
# A string input longer than this (or with whitespace) is text, not a name that drives memory
SHORT_TEXT = 120
LEARNED, ESTIMATED, UNKNOWN = "learned", "estimated", "unknown"
# a held prompt whose estimate the poll thread has not made yet (it is made outside every lock)
PENDING = "pending"


def _drives_memory(name: str, value: Any) -> bool:
    if "seed" in name.lower():
        return False  # a new seed is the same work
    if isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return len(value) <= SHORT_TEXT and not any(c.isspace() for c in value)
    return False  # links [node, output] and anything structured


def signature(prompt: Any) -> Optional[str]:
    """The prompt's signature (hex), or None for something that is not an API-format graph."""
    if not isinstance(prompt, Mapping) or not prompt:
        return None
    nodes = []
    for node in prompt.values():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            return None
        inputs = node.get("inputs") if isinstance(node.get("inputs"), Mapping) else {}
        kept = sorted((str(k), v) for k, v in inputs.items() if _drives_memory(str(k), v))
        nodes.append(json.dumps([node["class_type"], kept], sort_keys=True, separators=(",", ":")))
    return hashlib.sha256("\n".join(sorted(nodes)).encode()).hexdigest()[:32]


class LearnedPeaks:
    """signature -> peak bytes, least recently used first out. Thread-safe."""

    def __init__(self, path: Optional[str] = None, max_entries: int = 2000):
        self.path = path
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._table: "OrderedDict[str, int]" = OrderedDict()
        self.note: Optional[str] = None  # why the file could not be read or written

    def load(self) -> "LearnedPeaks":
        if not self.path or not os.path.exists(self.path):
            return self
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            entries = data["entries"] if isinstance(data, dict) and data.get("version") == FORMAT_VERSION else None
            if not isinstance(entries, list):
                raise ValueError(f"not a version {FORMAT_VERSION} table")
            with self._lock:
                for sig, peak in entries:
                    if isinstance(sig, str) and isinstance(peak, int) and peak > 0:
                        self._table[sig] = peak
                self._trim()
        except (OSError, ValueError, TypeError, KeyError) as e:
            self.note = (f"learned peaks file {self.path} could not be read ({e}); starting empty - "
                         "it is rewritten after the next prompt")
            log.warning("VRAM guard: %s", self.note)
        return self

    def __len__(self):
        with self._lock:
            return len(self._table)

    def get(self, sig: Optional[str]) -> Optional[int]:
        if sig is None:
            return None
        with self._lock:
            peak = self._table.get(sig)
            if peak is not None:
                self._table.move_to_end(sig)
            return peak

    def record(self, sig: Optional[str], peak_bytes: int, at_least: bool = False) -> Optional[int]:
        """Learn a prompt's peak: the latest measure, or with `at_least` (a run that failed for memory:
        it needed more than it got) never less than before. Returns the figure now learned."""
        if sig is None or peak_bytes is None or peak_bytes <= 0 or self.max_entries <= 0:
            return None
        with self._lock:
            old = self._table.pop(sig, None)
            peak = max(int(peak_bytes), old or 0) if at_least else int(peak_bytes)
            self._table[sig] = peak
            self._trim()
            entries = list(self._table.items())
        self._save(entries)
        return peak

    def resize(self, max_entries: int) -> None:
        with self._lock:
            self.max_entries = max_entries
            self._trim()

    def _trim(self):
        while len(self._table) > max(0, self.max_entries):
            self._table.popitem(last=False)

    def _save(self, entries) -> None:
        if not self.path:
            return
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".gpu_guard_peaks.", suffix=".tmp", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"version": FORMAT_VERSION, "entries": [list(e) for e in entries]}, f)
                os.replace(tmp, self.path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            self.note = None
        except OSError as e:
            self.note = f"learned peaks could not be saved to {self.path} ({e}); they last until a restart"
            log.warning("VRAM guard: %s", self.note)


_table: Optional[LearnedPeaks] = None  # the table the adapter installed (one guard per ComfyUI)


def install(table: Optional[LearnedPeaks]) -> None:
    global _table
    _table = table


def learned_for(prompt: Any) -> Optional[int]:
    table = _table
    return table.get(signature(prompt)) if table is not None else None


def need_of(prompt: Any) -> tuple:
    """(bytes or None, LEARNED | ESTIMATED | UNKNOWN): what the prompt is expected to take on the device."""
    learned = learned_for(prompt)
    if learned is not None:
        return learned, LEARNED
    estimate = estimators.estimate_prompt(prompt)
    return (estimate, ESTIMATED) if estimate is not None else (None, UNKNOWN)
