"""Who wrote a claim, and is that process still alive?

A pid alone is not enough: after a crash the kernel may give the same pid to an unrelated process.
A claim therefore carries the pid, the process's start time (field 22 of /proc/PID/stat, clock ticks
since boot: fixed for the life of a process) and the pid namespace it was written from. A claim is
live only while a process with that pid and that start time exists and is not a zombie. A claim
from another pid namespace (a container sharing the directory) cannot be checked by pid; the
registry then relies on its heartbeat alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

_PROC = "/proc"


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start: Optional[str]  # start time in clock ticks since boot, as text; None where /proc is missing
    pidns: Optional[str]  # e.g. "pid:[4026531836]"; None where /proc is missing

    @property
    def tag(self) -> str:
        """A file-name-safe id that differs for a reused pid."""
        return f"{self.pid}-{self.start or 'x'}"


def _stat_fields(pid: int, proc: str = _PROC) -> Optional[list]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        with open(f"{proc}/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    close = text.rfind(")")
    return text[close + 2:].split() if close >= 0 else None


def start_time(pid: int, proc: str = _PROC) -> Optional[str]:
    """The start time of a running process, or None when it does not exist or is a zombie."""
    fields = _stat_fields(pid, proc)
    # after the name: [0] state, ... [19] starttime (field 22 of the whole line)
    if not fields or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def pid_namespace(pid: str | int = "self", proc: str = _PROC) -> Optional[str]:
    try:
        return os.readlink(f"{proc}/{pid}/ns/pid")
    except OSError:
        return None


def this_process(proc: str = _PROC) -> ProcessId:
    pid = os.getpid()
    return ProcessId(pid, start_time(pid, proc), pid_namespace("self", proc))


def can_check(claim: ProcessId, me: ProcessId) -> bool:
    """Whether the pid in a claim means something here: same pid namespace, and /proc is readable."""
    return claim.start is not None and me.start is not None and claim.pidns == me.pidns


def alive(claim: ProcessId, proc: str = _PROC) -> bool:
    """True while the very process that wrote the claim runs (same pid and start time)."""
    return start_time(claim.pid, proc) == claim.start
