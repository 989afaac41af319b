"""Debian's HAProxy, started by a test on loopback with deploy/haproxy/haproxy.cfg."""
from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.harness.artifacts import artifact_dir
from tests.harness.processes import stop_process
from tests.harness.required import missing
from tests.harness.server import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"


def haproxy_or_skip() -> str:
    path = shutil.which("haproxy")
    if path is None:
        missing("haproxy is not installed (scripts/setup_env.sh installs Debian's haproxy as root)")
    return path


class HAProxy:
    """`servers`: {name in the config: "host:port"}, `agent_ports`: {name: its GPU_GUARD_LB_AGENT_PORT};
    the example config's COMFYUI_<n> and COMFYUI_<n>_AGENT_PORT variables."""

    def __init__(self, base: Path, servers: dict, check_interval: str = "500ms", config: Path = EXAMPLE_CONFIG,
                 agent_ports: dict = None):
        self.binary = haproxy_or_skip()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket_path = Path(base) / "haproxy.sock"
        self.config = config
        self.env = {**os.environ, "COMFYUI_LISTEN": f"127.0.0.1:{self.port}", "CHECK_INTERVAL": check_interval,
                    "HAPROXY_STATS_SOCKET": str(self.socket_path),
                    **{f"COMFYUI_{i}": address for i, address in enumerate(servers.values(), start=1)},
                    **{f"COMFYUI_{i}_AGENT_PORT": str((agent_ports or {}).get(name, free_port()))
                       for i, name in enumerate(servers, start=1)}}
        self.log_path = artifact_dir("haproxy") / "haproxy.log"
        self.process = None

    def start(self) -> "HAProxy":
        check = subprocess.run([self.binary, "-c", "-f", str(self.config)], env=self.env, capture_output=True,
                               text=True)
        assert check.returncode == 0, f"haproxy -c rejected {self.config}: {check.stdout}{check.stderr}"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([self.binary, "-db", "-f", str(self.config)], env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start; see {self.log_path}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 10)
            self._log.close()

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def _servers(self, backend: str) -> list:
        rows = csv.DictReader(self.command("show stat").lstrip("# ").splitlines())
        return [row for row in rows if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")]

    def server_states(self, backend: str = "comfyui_servers") -> dict:
        """{server name: "UP" | "DOWN" | "DRAIN" | "MAINT" ...} from `show stat`."""
        return {row["svname"]: row["status"].split()[0] for row in self._servers(backend)}

    def server_weights(self, backend: str = "comfyui_servers") -> dict:
        """{server name: effective weight} from `show stat` (the agent check sets it)."""
        return {row["svname"]: int(row["weight"]) for row in self._servers(backend)}
