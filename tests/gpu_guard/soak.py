"""A pause/resume soak against a real ComfyUI: prompts submitted across many hold episodes, with
random deletes, front-queued prompts and submissions while running; every prompt must end either
completed once or deleted and never run. Shared by the test suite (a short run) and
bench/soak_guard.py (the full one)."""
from __future__ import annotations

import random
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from tests.harness.events import EventStream

from tests.gpu_guard.guard_drill import GuardDrill, tiny_workflow


@dataclass
class SoakReport:
    prompts: int = 0
    cycles: int = 0
    completed: int = 0
    deleted: int = 0
    delete_requests: int = 0
    ran_twice: list = field(default_factory=list)
    lost: list = field(default_factory=list)  # neither completed nor deleted
    errors: list = field(default_factory=list)  # ended in history as an error
    ran_while_paused: list = field(default_factory=list)
    max_held: int = 0
    resume_latencies_s: list = field(default_factory=list)  # low reading written -> first prompt starts
    detect_latencies_s: list = field(default_factory=list)  # low reading written -> guard resumes
    dispatch_latencies_s: list = field(default_factory=list)  # guard resumes -> first held prompt starts
    seconds: float = 0.0
    hook_errors: int = 0

    @property
    def ok(self) -> bool:
        return not (self.ran_twice or self.lost or self.errors or self.ran_while_paused)

    def lines(self) -> list:
        return [
            f"prompts submitted      {self.prompts} over {self.cycles} pause/resume cycles in {self.seconds:.1f} s",
            f"completed (ran once)   {self.completed}",
            f"deleted (never ran)    {self.deleted} (delete requested for {self.delete_requests})",
            f"ran twice              {len(self.ran_twice)}",
            f"lost                   {len(self.lost)}",
            f"ended as error         {len(self.errors)}",
            f"started while paused   {len(self.ran_while_paused)}",
            f"largest held set       {self.max_held}",
            f"resume latency         {_spread(self.resume_latencies_s)} (low reading written -> first prompt starts)",
            f"  of which detection   {_spread(self.detect_latencies_s)} (-> the guard's resume transition)",
            f"  of which dispatch    {_spread(self.dispatch_latencies_s)} (transition -> first prompt starts)",
            f"queue hook errors      {self.hook_errors}",
            "RESULT                 " + ("PASS" if self.ok else "FAIL"),
        ]


def _spread(values) -> str:
    if not values:
        return "not measured"
    return (f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms "
            f"over {len(values)} resumes")


def run_soak(drill: GuardDrill, prompts: int, cycles: int, seed: int = 0, delete_share: float = 0.2,
             front_share: float = 0.2, running_share: float = 0.3, idle_timeout: float = 300.0) -> SoakReport:
    """Submits `prompts` prompts over `cycles` hold episodes. In each cycle most prompts are
    submitted while paused (a share of them to the front), a random share of the held ones is
    deleted, the guard is resumed, and the rest are submitted while running (some deleted at once,
    racing the worker: those may run or not, but never twice)."""
    rng = random.Random(seed)
    report = SoakReport(cycles=cycles)
    client = drill.client
    client_id = uuid.uuid4().hex
    submitted, delete_requested, paused_windows = [], set(), []
    color = rng.randrange(1 << 20)
    started = time.monotonic()
    with EventStream(client.ws_url, client_id) as events:
        for cycle in range(cycles):
            batch = prompts // cycles + (1 if cycle < prompts % cycles else 0)
            while_running = int(batch * running_share)
            while_paused = batch - while_running

            drill.pause()
            paused_from = time.time()
            held = []
            for _ in range(while_paused):
                color += 1
                held.append(client.post_prompt(tiny_workflow(color), client_id=client_id,
                                               front=rng.random() < front_share))
            submitted += held
            report.max_held = max(report.max_held, len(drill.status()["held"]))
            doomed = rng.sample(held, int(len(held) * delete_share))
            if doomed:
                client.post("/queue", {"delete": doomed})
                delete_requested.update(doomed)

            mark = events.mark()
            low_written, low_written_wall = time.monotonic(), time.time()
            drill.write_ratio(0.10)
            paused_windows.append((paused_from, low_written_wall))
            resumed = drill.wait_state("running")["transitions"][-1]["at"]
            if len(held) > len(doomed):
                first = events.wait_for("execution_start", timeout=60, since=mark)
                report.resume_latencies_s.append(first.at - low_written)
                report.detect_latencies_s.append(resumed - low_written_wall)
                report.dispatch_latencies_s.append(first.data["timestamp"] / 1000 - resumed)

            for _ in range(while_running):
                color += 1
                pid = client.post_prompt(tiny_workflow(color), client_id=client_id)
                submitted.append(pid)
                if rng.random() < delete_share:
                    client.post("/queue", {"delete": [pid]})  # races the worker on purpose
                    delete_requested.add(pid)
        drill.wait_idle(timeout=idle_timeout)
        time.sleep(0.3)  # the last websocket events
        starts = Counter(e.data.get("prompt_id") for e in events.of_type("execution_start"))
        start_times = {}
        for e in events.of_type("execution_start"):
            start_times.setdefault(e.data.get("prompt_id"), e.data.get("timestamp", 0) / 1000)

    history = client.get_json("/history")
    report.prompts = len(submitted)
    report.seconds = time.monotonic() - started
    for pid in submitted:
        entry = history.get(pid)
        runs = starts.get(pid, 0)
        if runs > 1:
            report.ran_twice.append(pid)
        if entry is None:
            if pid in delete_requested and runs == 0:
                report.deleted += 1
            else:
                report.lost.append(pid)
        elif entry["status"]["status_str"] != "success":
            report.errors.append(pid)
        elif runs == 1:
            report.completed += 1
        else:
            report.lost.append(pid)
        started_at = start_times.get(pid)
        # a start inside a paused window (with 50 ms slack for the clocks) would be a guard failure
        if started_at is not None and any(a + 0.05 < started_at < b - 0.05 for a, b in paused_windows):
            report.ran_while_paused.append(pid)
    report.delete_requests = len(delete_requested)
    report.hook_errors = drill.status().get("adapter", {}).get("hook_errors", 0)
    return report

