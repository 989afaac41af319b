"""The shared registry of guards on one physical GPU: a directory of small JSON files.

    <base>/<hash of the device key>/<pid>-<start>.claim.json          one per live guard
    <base>/<hash of the device key>/<target>.ask.<asker>.json         a release request

Each guard writes its own claim (what it holds that it could release: idle models and torch cache,
and whether its worker is busy) and reads the others'. Every write is a temporary file renamed over
the old one, so a reader never sees half a file. A claim whose process is gone (pid and start time,
see process_identity) or that was not refreshed for STALE_AFTER_S is removed by whoever sees it
first, with the requests addressed to it: a killed neighbour leaves nothing another guard waits on.
Nothing a prompt carries is written here, only byte counts, a pid and a name.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional

from . import process_identity
from .process_identity import ProcessId

log = logging.getLogger("gpu_guard.neighbours")

# A claim not refreshed for this long is dead even if its pid cannot be checked (another pid
# namespace) or its process hangs: 20 heartbeats, so a busy machine's scheduling never trips it.
STALE_AFTER_S = 10.0
# A request older than this is dropped unread: its asker has long decided on newer readings.
ASK_EXPIRES_S = 30.0

CLAIM_SUFFIX = ".claim.json"
ASK_MARK = ".ask."


def default_base_dir(environ=None, uid: Optional[int] = None) -> str:
    """Where the registry lives with no configuration: the user's runtime directory (tmpfs, private to
    the user), else /dev/shm (tmpfs) in a folder named after the user id, else the temp folder."""
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return os.path.join(runtime, "gpu_guard-neighbours")
    uid = os.getuid() if uid is None and hasattr(os, "getuid") else (uid or 0)
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return os.path.join(shm, f"gpu_guard-neighbours-{uid}")
    return os.path.join(tempfile.gettempdir(), f"gpu_guard-neighbours-{uid}")


@dataclass(frozen=True)
class Claim:
    pid: int
    start: Optional[str]
    pidns: Optional[str]
    name: str  # how people know this server, e.g. "host:8188"
    device: str  # the device key (an NVML UUID, or sim:PATH)
    idle_models_bytes: int  # loaded models its ComfyUI would release when asked (worker idle)
    torch_cache_bytes: int  # its torch cache, released with them
    busy: bool  # its worker runs a prompt: it releases nothing now
    pending: int  # prompts queued or held there
    at: float  # wall-clock time of this heartbeat

    @property
    def process(self) -> ProcessId:
        return ProcessId(self.pid, self.start, self.pidns)

    @property
    def releasable_bytes(self) -> int:
        return max(0, self.idle_models_bytes) + max(0, self.torch_cache_bytes)

    def as_dict(self) -> dict:
        return asdict(self)


def _check_owner(folder: str) -> None:
    """Refuse a folder another user made (e.g. planted in /dev/shm): its requests could make this
    ComfyUI unload its models on another user's say."""
    if not hasattr(os, "getuid"):
        return
    owner = os.stat(folder).st_uid
    if owner != os.getuid():
        raise PermissionError(f"the neighbours registry folder {folder} belongs to user id {owner}, not to "
                              f"this process's {os.getuid()}; remove it or set neighbours_dir to a folder of yours")


def _write_atomic(path: str, data: dict) -> None:
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _read(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None  # removed meanwhile, or being replaced: the next heartbeat has it
    return data if isinstance(data, dict) else None


def _claim_of(data: dict) -> Optional[Claim]:
    try:
        return Claim(pid=int(data["pid"]), start=data.get("start"), pidns=data.get("pidns"),
                     name=str(data.get("name", "")), device=str(data["device"]),
                     idle_models_bytes=int(data.get("idle_models_bytes", 0)),
                     torch_cache_bytes=int(data.get("torch_cache_bytes", 0)), busy=bool(data.get("busy")),
                     pending=int(data.get("pending", 0)), at=float(data["at"]))
    except (KeyError, TypeError, ValueError):
        return None


class Registry:
    """This guard's view of the registry folder of one device."""

    def __init__(self, base_dir: str, device_key: str, me: Optional[ProcessId] = None, name: str = "",
                 wall: Callable[[], float] = time.time, proc: str = "/proc"):
        self.base_dir = base_dir
        self.device_key = device_key
        self.dir = os.path.join(base_dir, hashlib.sha256(device_key.encode()).hexdigest()[:16])
        self.me = me or process_identity.this_process(proc)
        self.name = name
        self._wall = wall
        self._proc = proc
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        _check_owner(base_dir)
        _check_owner(self.dir)
        self._claim_path = os.path.join(self.dir, self.me.tag + CLAIM_SUFFIX)

    # -- my claim ------------------------------------------------------------------------------------

    def publish(self, idle_models_bytes: int, torch_cache_bytes: int, busy: bool, pending: int) -> Claim:
        claim = Claim(self.me.pid, self.me.start, self.me.pidns, self.name, self.device_key,
                      int(idle_models_bytes), int(torch_cache_bytes), bool(busy), int(pending), self._wall())
        _write_atomic(self._claim_path, claim.as_dict())
        return claim

    def withdraw(self) -> None:
        """Remove this guard's claim and the requests addressed to it (at exit, or when switched off)."""
        _remove(self._claim_path)
        for name in self._names():
            if name.startswith(self.me.tag + ASK_MARK):
                _remove(os.path.join(self.dir, name))

    # -- the others ----------------------------------------------------------------------------------

    def neighbours(self) -> List[Claim]:
        """The live claims of the other guards on this device; dead and stale ones are removed."""
        now = self._wall()
        found = []
        for name in self._names():
            if not name.endswith(CLAIM_SUFFIX) or name == os.path.basename(self._claim_path):
                continue
            path = os.path.join(self.dir, name)
            claim = _claim_of(_read(path) or {})
            if claim is None:
                continue
            if self._dead(claim, now):
                self._forget(claim, path)
                continue
            found.append(claim)
        return sorted(found, key=lambda c: (c.name, c.pid))

    def _dead(self, claim: Claim, now: float) -> bool:
        if now - claim.at > STALE_AFTER_S:
            return True
        process = claim.process
        if process_identity.can_check(process, self.me):
            return not process_identity.alive(process, self._proc)
        return False

    def _forget(self, claim: Claim, path: str) -> None:
        log.info("VRAM guard neighbours: %s (pid %d) is gone; its claim is removed", claim.name, claim.pid)
        _remove(path)
        tag = claim.process.tag
        for name in self._names():
            if name.startswith(tag + ASK_MARK) or name.endswith(ASK_MARK + tag + ".json"):
                _remove(os.path.join(self.dir, name))

    # -- release requests ----------------------------------------------------------------------------

    def ask(self, target: Claim, reason: str) -> None:
        """Ask `target` to release its idle models (one file per asker: a repeat replaces the last)."""
        path = os.path.join(self.dir, f"{target.process.tag}{ASK_MARK}{self.me.tag}.json")
        _write_atomic(path, {"by": self.name, "pid": self.me.pid, "start": self.me.start,
                             "pidns": self.me.pidns, "reason": reason, "at": self._wall()})

    def take_requests(self) -> List[dict]:
        """The requests addressed to this guard from live askers, each read once (then removed)."""
        prefix = self.me.tag + ASK_MARK
        now = self._wall()
        requests = []
        for name in self._names():
            if not name.startswith(prefix):
                continue
            path = os.path.join(self.dir, name)
            data = _read(path)
            _remove(path)
            if not data or now - float(data.get("at", 0)) > ASK_EXPIRES_S:
                continue
            asker = ProcessId(int(data.get("pid", 0)), data.get("start"), data.get("pidns"))
            if process_identity.can_check(asker, self.me) and not process_identity.alive(asker, self._proc):
                continue  # the asker died: nobody waits for this release
            requests.append(data)
        return requests

    def _names(self) -> List[str]:
        try:
            return os.listdir(self.dir)
        except FileNotFoundError:
            return []
