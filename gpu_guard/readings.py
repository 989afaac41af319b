"""Readings as the guard acts on them: the probe's figures split into what is pressure and what is not.

While a prompt runs, everything this process holds but its torch cache is that prompt's and is never
pressure; between prompts this ComfyUI's idle models and any further reclaimable source are freeable.
Readings are numbered when taken: the poll thread and the worker read concurrently, and one taken
before the last applied one is dropped, so an older fact never overwrites a newer one.
"""
from __future__ import annotations

import itertools
import logging
import threading
from typing import Callable, Optional

from .probes import ProbeError, Reading

log = logging.getLogger("gpu_guard")


class Readings:
    def __init__(self, probe, worker_busy: Callable[[], bool]):
        self.probe = probe
        self._worker_busy = worker_busy
        self._models: Callable[[], int] = lambda: 0
        self._models_failed = False
        self._other: dict = {}  # kind -> callable(reading) -> bytes
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)  # next() is atomic: readers on two threads get distinct numbers
        self._applied = 0

    def set_models_source(self, models: Callable[[], int]) -> None:
        self._models = models

    def set_reclaimable_source(self, kind: str, source: Optional[Callable[[Reading], int]]) -> None:
        with self._lock:
            if source is None:
                self._other.pop(kind, None)
            else:
                self._other[kind] = source

    def take(self) -> tuple:
        """(sequence number, reading or None, error or None); call it outside the guard's lock."""
        seq = next(self._numbers)
        reading, error = None, None
        try:
            reading = self._measure()
        except ProbeError as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - a sensor bug counts as a sensor failure
            error = f"{type(e).__name__}: {e}"
        return seq, reading, error

    def accept(self, seq: int) -> bool:
        """Whether the reading numbered `seq` is newer than every one applied so far (then it is)."""
        if seq < self._applied:
            return False
        self._applied = seq
        return True

    def _measure(self) -> Reading:
        busy = self._worker_busy()
        reading = self.probe.read()
        models = max(0, min(self._models_bytes(), reading.used_bytes - reading.reclaimable_bytes))
        if busy:  # the loaded models count as the prompt's where the probe cannot tell this process's bytes
            prompt = max(models, min(reading.own_bytes, reading.used_bytes) - reading.reclaimable_bytes)
            return reading._replace(prompt_bytes=prompt) if prompt else reading
        other = []
        for kind, source in list(self._other.items()) if self._other else ():
            try:
                other.append((kind, max(0, int(source(reading) or 0))))
            except Exception:  # noqa: BLE001 - the reading stands without the refinement
                log.exception("VRAM guard: reclaimable source %s failed; not counted", kind)
        if not models and not other:
            return reading
        return reading._replace(idle_models_bytes=models, other_reclaimable=tuple(other))

    def _models_bytes(self) -> int:
        try:
            models = int(self._models() or 0)
            self._models_failed = False
            return models
        except Exception:  # noqa: BLE001 - the reading stands without the refinement
            if not self._models_failed:
                log.exception("VRAM guard: could not measure ComfyUI's idle models; counting them as pressure")
            self._models_failed = True
            return 0
