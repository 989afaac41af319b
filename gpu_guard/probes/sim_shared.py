"""One simulated GPU shared by every ComfyUI process that names the same `sim:PATH`.

A SimProbe knows only its own ComfyUI. On a real GPU each process sees the others' memory in the
device's used figure, and the driver frees a process's memory the moment it dies. So that servers on
one simulated device see the same, every reading writes what this process holds (`own_bytes`) to
`PATH.procs/<pid>-<start>.json` and adds what the live others wrote. A file whose process is gone
(pid and start time, gpu_guard.neighbours.process_identity) counts nothing and is removed by the
first reader that sees it. A test and drill tool, like the simulated device itself.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from typing import Callable

from ..neighbours import process_identity
from ..neighbours.process_identity import ProcessId
from .reading import Reading
from .sim import SimProbe

PROCS_SUFFIX = ".procs"


class SharedSimProbe(SimProbe):
    def __init__(self, path: str, wall: Callable[[], float] = time.time, proc: str = "/proc"):
        super().__init__(path, wall)
        self._proc = proc
        self._me = process_identity.this_process(proc)
        self.procs_dir = path + PROCS_SUFFIX
        self._mine = os.path.join(self.procs_dir, self._me.tag + ".json")
        self._published = None  # own_bytes as last written

    def read(self) -> Reading:
        reading = super().read()
        self._publish(reading.own_bytes)
        others = self._others()
        if not others:
            return reading
        total, foreign = reading.total_bytes, reading.used_bytes - reading.own_bytes
        # over-committed: like foreign memory, the other processes keep theirs and this one gets the rest
        own = max(0, min(reading.own_bytes, total - foreign - others))
        return dataclasses.replace(reading, used_bytes=min(total, foreign + others + own), own_bytes=own,
                                   reclaimable_bytes=min(reading.reclaimable_bytes, own))

    def _publish(self, own_bytes: int) -> None:
        """Write this process's bytes when they changed (or the file went away): a write per reading
        was 0.5 ms of every decision, and the figure moves only at loads, runs and frees."""
        if own_bytes == self._published and os.path.exists(self._mine):
            return
        os.makedirs(self.procs_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.procs_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"pid": self._me.pid, "start": self._me.start, "own_bytes": int(own_bytes)}, f)
        os.replace(tmp, self._mine)
        self._published = own_bytes  # only once written: a failed write is tried again at the next reading

    def _others(self) -> int:
        total = 0
        for name in os.listdir(self.procs_dir):
            path = os.path.join(self.procs_dir, name)
            if not name.endswith(".json") or name.startswith(".") or path == self._mine:
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
                owner = ProcessId(int(data["pid"]), data.get("start"), self._me.pidns)
                own = max(0, int(data.get("own_bytes", 0)))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # replaced meanwhile: the next reading has it
            if not process_identity.alive(owner, self._proc):
                try:
                    os.unlink(path)  # the driver has freed a dead process's memory
                except FileNotFoundError:
                    pass
                continue
            total += own
        return total
