"""Starts and stops a real ComfyUI with this pack installed, on a free loopback port.

Each server gets its own folders (input, output, temp, user, models/ddcolor, custom_nodes) under a
base directory; the pack is installed as a symlink named `comfyui-ddcolor-vram-guard` in that
custom_nodes folder, which an extra_model_paths.yaml hands to ComfyUI together with the ddcolor models
folder. The log goes to a file kept as a test artefact. GPU_GUARD_* variables of the calling shell are
not passed on (unless inherit_guard_env), so that a test server's guard settings are exactly its `env`.
"""
from __future__ import annotations

import atexit
import ctypes
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from .artifacts import REPO_ROOT, artifact_dir
from .client import ComfyClient
from .comfyui_install import ensure_comfyui
from .processes import stop_process

PACK_NAME = "comfyui-ddcolor-vram-guard"
# Settings seeded into a fresh user folder: no first-run template dialog over the graph.
DEFAULT_USER_SETTINGS = '{"Comfy.TutorialCompleted": true}\n'

PR_SET_PDEATHSIG = 1  # prctl option, linux/prctl.h

_running: set["ComfyServer"] = set()


class ComfyStartError(RuntimeError):
    """ComfyUI did not come up, or came up without the pack; the message carries the log tail."""


def _die_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when the thread that started it ends,
    so a test run killed from outside (where atexit does not run) leaves no ComfyUI behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux/glibc: atexit still stops servers on a normal exit


def _claim_log(preferred: Path, fresh: bool):
    """Opens a server's log file, locked while the server runs. When a live server of another test run
    in the same checkout holds that name, a numbered sibling (name-2.log, ...) is used instead of
    overwriting its log."""
    preferred.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, 100):
        path = preferred if number == 1 else preferred.with_name(f"{preferred.stem}-{number}{preferred.suffix}")
        handle = open(path, "ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        if fresh:
            handle.truncate(0)
        return path, handle
    raise ComfyStartError(f"99 live servers already log next to {preferred}; stop some test runs")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerFolders:
    """The folders one ComfyUI server reads and writes, all under `base`."""

    def __init__(self, base: Path):
        self.base = Path(base).resolve()
        self.input = self.base / "input"
        self.output = self.base / "output"
        self.temp = self.base / "temp"
        self.user = self.base / "user"
        self.models = self.base / "models" / "ddcolor"
        self.custom_nodes = self.base / "custom_nodes"
        self.pack_link = self.custom_nodes / PACK_NAME
        self.extra_model_paths = self.base / "extra_model_paths.yaml"

    def create(self, pack_root: Path) -> None:
        for folder in (self.input, self.output, self.temp, self.user / "default", self.models,
                       self.custom_nodes):
            folder.mkdir(parents=True, exist_ok=True)
        if not self.pack_link.is_symlink():
            self.pack_link.symlink_to(Path(pack_root).resolve(), target_is_directory=True)
        settings = self.user / "default" / "comfy.settings.json"
        if not settings.exists():
            settings.write_text(DEFAULT_USER_SETTINGS, encoding="utf-8")
        # JSON strings are valid YAML scalars and quote any path safely.
        self.extra_model_paths.write_text(
            "pack:\n"
            f"  custom_nodes: {_quoted(self.custom_nodes)}\n"
            f"  ddcolor: {_quoted(self.models)}\n",
            encoding="utf-8",
        )


def _quoted(path: Path) -> str:
    return json.dumps(str(path))


class ComfyServer(ComfyClient):
    """A ComfyUI process owned by the harness; also a ComfyClient for it once started.

        server = ComfyServer(tmp_dir, name="guard", env={"GPU_GUARD_PROBE": "file:/tmp/p.json"})
        with server:            # start() ... stop()
            server.post_prompt(workflow)
    """

    is_local = True

    def __init__(self, base_dir: str | Path, *, name: str = "comfyui", env: dict[str, str] | None = None,
                 extra_args: tuple[str, ...] = (), pack_root: str | Path = REPO_ROOT,
                 startup_timeout: float = 180.0, python: str | None = None,
                 log_path: str | Path | None = None, inherit_guard_env: bool = False,
                 port: int | None = None, cpu: bool = True):
        super().__init__("http://127.0.0.1:0")
        self.name = name
        self.folders = ServerFolders(Path(base_dir))
        self.env = dict(env or {})
        self.extra_args = tuple(extra_args)
        self.pack_root = Path(pack_root)
        self.startup_timeout = float(os.environ.get("COMFYUI_START_TIMEOUT") or startup_timeout)
        self.python = python or os.environ.get("COMFYUI_PYTHON") or sys.executable
        self.log_path = Path(log_path) if log_path else artifact_dir("comfyui") / f"{name}.log"
        self.inherit_guard_env = inherit_guard_env
        self.process: subprocess.Popen | None = None
        self.requested_port = port  # None: a free loopback port, picked at each start
        self.cpu = cpu  # False: ComfyUI picks its GPU as it normally does
        self.port: int | None = None
        self.comfyui_dir: Path | None = None
        self._log_handle = None
        self._spawns = 0

    # ------------------------------------------------------------ lifecycle

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def models_dir(self) -> Path:
        """The `ddcolor` model folder this server lists checkpoints from."""
        return self.folders.models

    def start(self) -> "ComfyServer":
        if self.process is not None and self.process.poll() is None:
            return self
        self.comfyui_dir = ensure_comfyui()
        self.folders.create(self.pack_root)
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            self._spawn(self.requested_port or free_port())
            try:
                self._wait_ready()
                break
            except ComfyStartError as error:
                self.stop()
                # Another process may take the port between free_port() and ComfyUI's bind.
                if "address already in use" not in str(error).lower() or attempt == attempts - 1:
                    raise
        self.check_pack_imported()
        return self

    def _command(self, port: int) -> list[str]:
        f = self.folders
        return [
            self.python, "-u", str(self.comfyui_dir / "main.py"), *(["--cpu"] if self.cpu else []),
            "--listen", "127.0.0.1", "--port", str(port),
            "--extra-model-paths-config", str(f.extra_model_paths),
            "--database-url", "sqlite:///:memory:", "--disable-api-nodes",
            "--output-directory", str(f.output), "--temp-directory", str(f.temp),
            "--user-directory", str(f.user), "--input-directory", str(f.input),
            *self.extra_args,
        ]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if self.inherit_guard_env or not k.startswith("GPU_GUARD_")}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        return env

    def _spawn(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        # A restart appends, so that the log shows the server's whole life.
        self.log_path, self._log_handle = _claim_log(self.log_path, fresh=not self._spawns)
        self._spawns += 1
        command = self._command(port)
        self._log_handle.write(("$ " + " ".join(command) + "\n").encode())
        self._log_handle.flush()
        self.process = subprocess.Popen(
            command, cwd=self.comfyui_dir, env=self._environment(),
            stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        _running.add(self)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise ComfyStartError(f"ComfyUI exited with code {code} during start-up.\n{self.log_tail()}")
            try:
                if self.http.get(self.url + "/system_stats", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() >= deadline:
                raise ComfyStartError(
                    f"ComfyUI did not answer /system_stats within {self.startup_timeout:.0f}s.\n{self.log_tail()}")
            time.sleep(0.25)

    def check_pack_imported(self) -> None:
        """Raises when ComfyUI reported the pack's import as failed (its exit code does not show it)."""
        pack = re.compile(re.escape(str(self.folders.pack_link)) + r"(\s|$)")
        failed = [line.strip() for line in self.log_text().splitlines()
                  if ("IMPORT FAILED" in line or "Cannot import" in line) and pack.search(line)]
        if failed:
            raise ComfyStartError(
                f"ComfyUI started but could not import the pack: {failed}.\n{self.log_tail(80)}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stops the process by its PID (terminate, then kill); returns its exit code."""
        code = None
        if self.process is not None:
            code = stop_process(self.process, timeout)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        _running.discard(self)
        return code

    def kill(self) -> int | None:
        """A crash: SIGKILL, so no shutdown code of ComfyUI or a pack runs. The folders stay, and
        start() brings the server up again on the same user directory (on a new free port)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)
        return self.stop()

    def restart(self, env: dict[str, str] | None = None) -> "ComfyServer":
        """Stops and starts again with the same folders (and `env` replacing the old one, if given)."""
        self.stop()
        if env is not None:
            self.env = dict(env)
        self.process = None
        return self.start()

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def output_file(self, image: dict) -> Path:
        """Where an image listed in a history entry (see output_images) lies on disk."""
        folder = {"output": self.folders.output, "temp": self.folders.temp, "input": self.folders.input}
        return folder[image.get("type", "output")] / image.get("subfolder", "") / image["filename"]

    # ------------------------------------------------------------ log

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def wait_for_log(self, text: str, timeout: float = 30.0, since: int = 0) -> str:
        """Waits until `text` appears in the log (after character offset `since`); returns the line."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()[since:]
            if text in log:
                return next(line for line in log.splitlines() if text in line)
            if time.monotonic() >= deadline:
                raise AssertionError(f"{text!r} not in the ComfyUI log within {timeout:.0f}s.\n{self.log_tail()}")
            time.sleep(0.2)


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        server.stop()
