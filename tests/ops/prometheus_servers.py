"""Debian's real Prometheus, promtool and Alertmanager for the tests, started on free loopback ports.

The binaries come from the Debian packages `prometheus` (/usr/bin/prometheus, /usr/bin/promtool) and
`prometheus-alertmanager` (/usr/bin/prometheus-alertmanager); scripts/setup_env.sh installs them
when it runs as root. Without them the tests that need them skip, saying so.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import requests
import yaml

from tests.harness.artifacts import artifact_dir
from tests.harness.processes import stop_process
from tests.harness.required import missing
from tests.harness.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TEST = REPO_ROOT / "deploy" / "prometheus" / "rules_test.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "gpu_guard_dashboard.json"
ALERTMANAGER_CONFIG = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
PACKAGES = {"prometheus": "prometheus", "promtool": "prometheus", "prometheus-alertmanager": "prometheus-alertmanager",
            "amtool": "prometheus-alertmanager"}


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed: install Debian's {PACKAGES[name]} package "
                    "(scripts/setup_env.sh does, run as root)")
    return path


def wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(url + "/-/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout} s:\n{log_path.read_text()[-3000:]}")


class Daemon:
    """One server process with its own folder; logs to test-artifacts/prometheus/<name>.log."""

    def __init__(self, name: str, argv: list, port: int):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = artifact_dir("prometheus") / f"{name}.log"
        self._log = open(self.log_path, "w")
        self._log.write(" ".join(argv) + "\n")
        self._log.flush()
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        wait_ready(self.url, self.process, self.log_path)

    def stop(self) -> None:
        stop_process(self.process, 10)
        self._log.close()

    def get_json(self, path: str, **params) -> dict:
        answer = requests.get(self.url + path, params=params, timeout=10)
        answer.raise_for_status()
        return answer.json()


def start_alertmanager(folder: Path, config_text: str) -> Daemon:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alertmanager.yml").write_text(config_text)
    port = free_port()
    return Daemon("alertmanager", [
        binary("prometheus-alertmanager"), f"--config.file={folder / 'alertmanager.yml'}",
        f"--storage.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=", "--log.level=debug"], port)


def start_prometheus(folder: Path, config_text: str) -> Daemon:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(config_text)
    port = free_port()
    return Daemon("prometheus", [
        binary("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--rules.alert.resend-delay=1s", "--log.level=debug"], port)


def rules_with_wait(folder: Path, alert_name: str, wait: str) -> Path:
    """The shipped rules with one alert's `for:` set to `wait` (its expression kept as shipped), written
    to folder/rules.yml: a test sees it fire without waiting minutes."""
    rules = yaml.safe_load(RULES.read_text())
    (alert,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert_name]
    alert["for"] = wait
    path = folder / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def prometheus_config(rules_path: Path, comfy_url: str, alertmanager_port=None) -> str:
    """Scrape one ComfyUI's /gpu_guard/metrics every second and evaluate `rules_path`; alerts go to the
    Alertmanager on `alertmanager_port` when one is given."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_path)],
        "scrape_configs": [{"job_name": "comfyui", "metrics_path": "/gpu_guard/metrics",
                            "static_configs": [{"targets": [re.sub(r"^https?://", "", comfy_url).rstrip("/")]}]}]}
    if alertmanager_port is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]}
    return yaml.safe_dump(config)


def alerts_named(prometheus: Daemon, alert_name: str) -> list:
    """The alerts of that name in Prometheus' /api/v1/alerts (pending and firing)."""
    return [a for a in prometheus.get_json("/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == alert_name]
