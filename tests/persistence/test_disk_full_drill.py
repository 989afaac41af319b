"""A full disk under a real ComfyUI 0.3.75: its user directory is a small tmpfs, filled up while
prompts of 25 KB go through (queued, run, done) and the journal cannot write.

- ComfyUI keeps running: every prompt runs and ends as a success.
- The journal's memory stays bounded: what waits for the disk is compacted to the prompts queued
  at that moment, never the 3,000 that passed (`unwritten_bytes`, sampled all along).
- The shipped GpuGuardJournalFailing rule fires on a real Prometheus scraping the server (its
  expression as shipped; only its `for:`, 1m, is shortened to 1 s).
- Space returns: the journal catches up, and the file holds exactly the prompts held then.
"""
from __future__ import annotations

import errno
import shutil
import sqlite3
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from tests.gpu_guard.guard_drill import wait_until
from tests.harness.required import missing
from tests.ops.prometheus_servers import alerts_named, prometheus_config, rules_with_wait, start_prometheus
from tests.persistence.journal_drill import JournalDrill, drill_workflow

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

DISK_BYTES = 8 * 2**20  # the user directory's tmpfs
PROMPTS = 3000
PAYLOAD_BYTES = 25_000
BURST = 50  # prompts posted before the queue is let run empty: at most this many queued at once
POSTERS = 10  # concurrent posts (the client's connection pool)
ALERT = "GpuGuardJournalFailing"


@contextmanager
def tmpfs(folder, size_bytes):
    """A tmpfs of this size mounted on `folder`, with the folder's files copied in (root only)."""
    if shutil.which("mount") is None:
        missing("mount (util-linux) is not installed")
    kept = folder.with_name(folder.name + ".before")
    folder.rename(kept)
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)],
                             check=False, capture_output=True, text=True)
    if mounted.returncode != 0:
        folder.rmdir()
        kept.rename(folder)
        missing(f"the disk-full drill mounts a tmpfs and needs root (CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        shutil.copytree(kept, folder, dirs_exist_ok=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder) -> int:
    """Write a filler file until the disk is full; returns its size."""
    written = 0
    with open(folder / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
                written += 65536
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return written


def journal_alerts(prometheus, state):
    return [a for a in alerts_named(prometheus, ALERT) if a["state"] == state]


class Sampler(threading.Thread):
    """Reads the journal's status every 50 ms while the prompts pass."""

    def __init__(self, drill):
        super().__init__(daemon=True)
        self.drill, self.stop, self.samples = drill, threading.Event(), []

    def run(self):
        while not self.stop.wait(0.05):
            self.samples.append(self.drill.journal_status())


def test_a_full_disk_keeps_comfyui_running_bounds_the_journal_fires_the_alert_and_it_catches_up(
        comfy_factory, tmp_path):
    server = comfy_factory(env={"GPU_GUARD_PERSIST": "1"}, checkpoint=False, start=False)
    drill = JournalDrill(server)
    server.folders.create(server.pack_root)
    with tmpfs(server.folders.user, DISK_BYTES) as user_dir:
        server.start()
        first, _ = drill.post("before the disk filled")
        drill.wait_done([first])
        assert drill.wait_written()["problem"] is None

        prometheus = start_prometheus(tmp_path / "prom", prometheus_config(rules_with_wait(tmp_path, ALERT, "1s"),
                                                                           server.url))
        sampler = Sampler(drill)
        try:
            wait_until(lambda: prometheus.get_json("/api/v1/query", query="gpu_guard_journal_write_errors_total")
                       ["data"]["result"], timeout=30, interval=0.2, what="Prometheus scraping ComfyUI")
            assert journal_alerts(prometheus, "firing") == []
            filled = fill(user_dir)
            sampler.start()
            ids = []
            with ThreadPoolExecutor(POSTERS) as pool:
                for start in range(0, PROMPTS, BURST):
                    ids += [pid for pid, _number in pool.map(lambda n: _post(drill, n), range(start, start + BURST))]
                    wait_until(lambda: drill.client.get_json("/prompt")["exec_info"]["queue_remaining"] == 0,
                               timeout=60, interval=0.05, what="the burst to run")
            ran = wait_until(lambda: (lambda ended: ended if len(ended) == PROMPTS else None)(
                {tag for kind, tag in drill.runs() if kind == "end" and tag.startswith("full-")}),
                timeout=600, interval=0.5, what=f"{PROMPTS} prompts to run")
            wait_until(lambda: not drill.client.queue()["queue_running"], what="the last prompt to end")
            sampler.stop.set()
            sampler.join()

            # ComfyUI kept running: every prompt ran to its end, none failed
            assert len(set(ids)) == PROMPTS and len(ran) == PROMPTS
            assert "Exception during processing" not in server.log_text()
            failing = [s for s in sampler.samples if s["problem"] and "full" in s["problem"]]
            assert failing, "the journal never reported the full disk"
            # bounded: at most the prompts queued at one moment (BURST of 25 KB), never the traffic
            peak = max(s["unwritten_bytes"] for s in sampler.samples)
            assert peak <= BURST * (PAYLOAD_BYTES + 2000), f"{peak} bytes waited for the disk"
            journal = drill.journal_status()
            assert journal["write_errors"] >= 1 and journal["answered_unwritten"] >= 1, journal
            (alert,) = wait_until(lambda: journal_alerts(prometheus, "firing"), timeout=30, interval=0.2,
                                  what=f"{ALERT} firing on Prometheus")
            assert alert["labels"]["severity"] == "critical"

            # space returns with prompts held: the journal catches up and holds exactly those
            drill.write_ratio(0.95)
            wait_until(lambda: drill.status()["state"] == "paused", what="the guard to pause")
            held = [_post(drill, PROMPTS + n)[0] for n in range(5)]
            drill.wait_held(5)
            (user_dir / "filler").unlink()
            status = wait_until(lambda: (lambda j: j if j["problem"] is None and j["unwritten"] == 0 else None)(
                drill.journal_status()), timeout=30, what="the journal to catch up")
            assert status["journaled"] == 5 and not status["over_limit"]
            with sqlite3.connect(drill.journal_path) as db:
                assert {row[0] for row in db.execute("SELECT prompt_id FROM prompts")} == set(held)
            print(f"\ndisk full ({filled // 1024} KiB filler on a {DISK_BYTES // 2**20} MiB tmpfs): {PROMPTS} "
                  f"prompts of {PAYLOAD_BYTES // 1000} KB ran; peak waiting for the disk {peak} bytes over "
                  f"{len(sampler.samples)} samples; {len(failing)} samples reported the full disk")
        finally:
            sampler.stop.set()
            prometheus.stop()
            server.stop()


def _post(drill, n):
    response = drill.client.post_prompt_raw(drill_workflow(f"full-{n}", payload_bytes=PAYLOAD_BYTES))
    assert response.status_code == 200, response.text
    body = response.json()
    return body["prompt_id"], body["number"]
