"""One simulated GPU shared by every ComfyUI process that names the same `sim:PATH`.

A SimProbe knows only its own ComfyUI. On a real GPU each process sees the others' memory in the
device's used figure, and the driver frees a process's memory the moment it dies. So that servers on
one simulated device see the same, every reading writes what this process holds (`own_bytes`) to
`PATH.procs/<pid>-<start>.json` and adds what the live others wrote. A file whose process is gone
(pid and start time, gpu_guard.neighbours.process_identity) counts nothing and is removed by the
first reader that sees it. A test and drill tool, like the simulated device itself.
"""
from __future__ import annotations

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
# A folder's mtime moves in steps: the kernel's clock tick on ext4 and tmpfs (milliseconds), up to 2 s
# on FAT and some network or FUSE mounts. A change in the same step as a listing leaves the mtime as it
# was, so a listing is trusted while the folder is unchanged only once its last change is older than
# the coarsest step (the folder changes at loads, runs and frees, so it is listed for 2 s after each).
RACY_S = 2.0


class SharedSimProbe(SimProbe):
    def __init__(self, path: str, wall: Callable[[], float] = time.time, proc: str = "/proc"):
        super().__init__(path, wall)
        self._proc = proc
        self._me = process_identity.this_process(proc)
        self.procs_dir = path + PROCS_SUFFIX
        self._mine_name = self._me.tag + ".json"
        self._mine = os.path.join(self.procs_dir, self._mine_name)
        self._published = None  # own_bytes as last written
        # ((inode, mtime) of the folder when it was listed, or None while that listing may be stale; names)
        self._listed: tuple = (None, [])

    def read(self) -> Reading:
        reading = super().read()
        names = self._names()
        if reading.own_bytes != self._published or self._mine_name not in names:
            self._publish(reading.own_bytes)
        others = self._others(names)
        if not others:
            return reading
        total, foreign = reading.total_bytes, reading.used_bytes - reading.own_bytes
        # over-committed: like foreign memory, the other processes keep theirs and this one gets the rest
        own = max(0, min(reading.own_bytes, total - foreign - others))
        return reading._replace(used_bytes=min(total, foreign + others + own), own_bytes=own,
                                reclaimable_bytes=min(reading.reclaimable_bytes, own))

    def _names(self) -> list:
        """The folder's file names, listed again only when the folder changed: a stat instead of a
        listing at every reading. A folder changed within RACY_S of the listing is listed again next
        time, as its mtime may not have moved for a change made in the same step of its clock."""
        try:
            st = os.stat(self.procs_dir)
        except FileNotFoundError:
            return []
        key = (st.st_ino, st.st_mtime_ns)
        trusted_key, listing = self._listed  # one tuple: the poll thread and the worker read concurrently
        if key != trusted_key:
            listing = os.listdir(self.procs_dir)
            self._listed = (key if time.time_ns() - st.st_mtime_ns > RACY_S * 1e9 else None, listing)
        return listing

    def _publish(self, own_bytes: int) -> None:
        """Write this process's bytes when they changed (or the file went away): a write per reading
        was 0.5 ms of every decision, and the figure moves only at loads, runs and frees."""
        os.makedirs(self.procs_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.procs_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"pid": self._me.pid, "start": self._me.start, "own_bytes": int(own_bytes)}, f)
        os.replace(tmp, self._mine)
        self._published = own_bytes  # only once written: a failed write is tried again at the next reading

    def _others(self, names: list) -> int:
        total = 0
        for name in names:
            if not name.endswith(".json") or name.startswith(".") or name == self._mine_name:
                continue
            path = os.path.join(self.procs_dir, name)
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
