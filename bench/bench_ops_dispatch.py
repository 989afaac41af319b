"""Benchmark: webhook targets that are down never delay a prompt.

Each case is measured against a baseline in the same run:
1. Core: the time of one poll that flips the guard's state (it emits the pause/resume events to the
   subscribers on the polling thread) and of one dispatch decision, with no operations layer
   (baseline), with it and no targets, and with it and two targets that are down (one answers 500,
   one hangs past its timeout) while an alert is being retried.
2. Real ComfyUI 0.3.75 with this pack (file probe): dispatch latency, from the reading dropping below
   resume_at to ComfyUI's `execution_start` of the held prompt, on a server without webhooks
   (baseline) and on one whose two webhook targets are down and busy retrying.

Run from the repo root: python bench/bench_ops_dispatch.py [--quick] [--skip-comfyui]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from gpu_guard.comfy.queue_ops import HeapView, entry_of  # noqa: E402
from gpu_guard.config import GuardConfig  # noqa: E402
from gpu_guard.guard import Guard  # noqa: E402
from gpu_guard.ops import OpsService  # noqa: E402
from gpu_guard.probes import FileProbe  # noqa: E402
from tests.ops.receiver import Receiver  # noqa: E402

GIB = 1 << 30
HANG_S = 3600.0


def write_probe(path: str, ratio: float) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"used_bytes": round(ratio * 80 * GIB), "total_bytes": 80 * GIB}, f)
    os.replace(tmp, path)


def down_targets(failing: Receiver, hanging: Receiver) -> tuple:
    return ({"name": "answers-500", "format": "json", "secret": "bench", "url": failing.url + "/hook"},
            {"name": "hangs", "format": "slack", "url": hanging.url + "/hook"})


def stats_ms(samples: list) -> tuple:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p90 * 1000


class CoreCase:
    """A guard on a file probe, with or without an operations layer subscribed to its events."""

    def __init__(self, folder: str, name: str, targets):
        self.probe_path = os.path.join(folder, f"{name}.json")
        write_probe(self.probe_path, 0.5)
        config = GuardConfig(probe="file:" + self.probe_path, webhooks=targets or (), alert_pauses_per_day=1,
                             webhook_retries=20, webhook_timeout_s=5.0)
        self.guard = Guard(config, FileProbe(self.probe_path))
        self.ops = None
        if targets is not None:
            self.ops = OpsService(lambda: self.guard.config, os.path.join(folder, f"{name}-events.jsonl"),
                                  snapshot=lambda: {"held": 0}, source="bench")
            self.guard.subscribe_events(self.ops.handle)
            self.ops.start()
        self.guard.poll_once()
        self.flips, self.decides, self.paused = [], [], False
        self.heap = [(n, f"prompt-{n}", {}, {"client_id": "bench"}, []) for n in range(10)]

    def flip(self) -> None:
        self.paused = not self.paused
        write_probe(self.probe_path, 0.9 if self.paused else 0.1)
        start = time.perf_counter()
        self.guard.poll_once()
        self.flips.append(time.perf_counter() - start)

    def decide(self) -> None:
        heap = self.heap
        start = time.perf_counter()
        self.guard.decide_pass(entry_of(heap[0]), lambda: HeapView(list(heap)))
        self.decides.append(time.perf_counter() - start)

    def close(self) -> tuple:
        ops = self.ops.status()["ops"] if self.ops else {"alerts": {"firing": []}, "webhooks": []}
        if self.ops:
            self.ops.stop(0.5)
        return ops["alerts"]["firing"], ops["webhooks"]


def bench_core(cycles: int) -> bool:
    print(f"1. Core: one poll that flips the state ({cycles * 2} flips a case) and one dispatch decision "
          "(2000 a case); the cases alternate call by call")
    with tempfile.TemporaryDirectory() as folder, Receiver(script=[500]) as failing, \
            Receiver(script=[("hang", HANG_S)]) as hanging:
        cases = [("no operations layer (baseline)", CoreCase(folder, "none", None)),
                 ("operations, no targets", CoreCase(folder, "quiet", ())),
                 ("operations, 2 targets down", CoreCase(folder, "down", down_targets(failing, hanging)))]
        for _ in range(cycles * 2):
            for _, case in cases:
                case.flip()
        for _, case in cases:
            case.guard.poll_once()  # running, after an even number of flips
        for _ in range(2000):
            for _, case in cases:
                case.decide()
        closed = [case.close() for _, case in cases]
        requests_seen = len(failing.requests), len(hanging.requests)
    base_flip, base_decide = statistics.median(cases[0][1].flips), statistics.median(cases[0][1].decides)
    print(f"   {'case':<34}{'flip median us':>15}{'ratio':>7}{'decide median us':>18}{'ratio':>7}")
    for label, case in cases:
        flip, dec = statistics.median(case.flips), statistics.median(case.decides)
        print(f"   {label:<34}{flip * 1e6:>15.1f}{flip / base_flip:>7.2f}{dec * 1e6:>18.2f}{dec / base_decide:>7.2f}")
    firing, hooks = closed[2]
    print(f"   while measuring, the down targets got {requests_seen[0]} (500) and {requests_seen[1]} (hanging) "
          f"requests; alerts firing: {firing}; failed attempts: {[h['failed_attempts'] for h in hooks]}")
    return bool(firing) and requests_seen[0] > 0 and requests_seen[1] > 0


def one_dispatch(drill, stream, i: int) -> float:
    """Pause, submit a prompt, wait until it is held, drop the reading: seconds until execution_start."""
    from tests.gpu_guard.guard_drill import tiny_workflow, wait_until

    drill.pause()
    prompt_id = drill.client.post_prompt(tiny_workflow(i), client_id=stream.client_id)
    wait_until(lambda: drill.held_ids() == [prompt_id], what="the prompt held")
    mark = stream.mark()
    dropped = time.monotonic()
    drill.probe.write_ratio(0.10)
    started = stream.wait_for("execution_start", lambda d: d.get("prompt_id") == prompt_id, timeout=30, since=mark)
    stream.wait_for_prompt_end(prompt_id, since=mark)
    drill.wait_state("running")
    return started.at - dropped


def start_server(base: Path, name: str, env: dict):
    from tests.gpu_guard.guard_drill import GuardDrill
    from tests.harness.probe_file import ProbeFile
    from tests.harness.server import ComfyServer

    probe = ProbeFile(base / f"{name}-probe.json")
    probe.write_ratio(0.10)
    server = ComfyServer(base / name, name=f"bench_ops_{name}", env={"GPU_GUARD_PROBE": f"file:{probe.path}", **env})
    server.start()
    return server, GuardDrill(server, probe)


def bench_comfyui(cycles: int) -> None:
    print(f"2. Real ComfyUI: reading drops -> execution_start of the held prompt ({cycles} cycles a server,")
    print("   the two servers alternate cycle by cycle, so both see the same load on the machine)")
    with tempfile.TemporaryDirectory(prefix="bench_ops_") as folder, Receiver(script=[500]) as failing, \
            Receiver(script=[("hang", HANG_S)]) as hanging:
        base = Path(folder)
        common = {"GPU_GUARD_POLL_S": "0.25", "GPU_GUARD_ALERT_PAUSES_PER_DAY": "1"}
        cases = [("no webhooks (baseline)", common),
                 ("2 targets down", {**common, "GPU_GUARD_WEBHOOKS": json.dumps(list(down_targets(failing, hanging))),
                                     "GPU_GUARD_WEBHOOK_TIMEOUT_S": "5", "GPU_GUARD_WEBHOOK_RETRIES": "20"})]
        servers = [start_server(base, f"case{k}", env) for k, (_, env) in enumerate(cases)]
        latencies = [[], []]
        try:
            streams = [server.events(client_id=f"bench-{k}") for k, (server, _) in enumerate(servers)]
            for i in range(cycles):
                for k, (_, drill) in enumerate(servers):
                    latencies[k].append(one_dispatch(drill, streams[k], i))
            for (label, _), (_, drill) in zip(cases, servers):
                status = drill.status()
                print(f"   {label}: alerts firing {status['ops']['alerts']['firing']}, webhooks (failed attempts, "
                      f"queued) {[(w['name'], w['failed_attempts'], w['queued']) for w in status['ops']['webhooks']]}")
            for stream in streams:
                stream.close()
        finally:
            for server, _ in servers:
                server.stop()
        print(f"   requests the down targets got: {len(failing.requests)} (500), {len(hanging.requests)} (hanging)")
    print(f"   {'server':<26}{'median ms':>10}{'p90 ms':>9}{'max ms':>9}")
    figures = []
    for (label, _), samples in zip(cases, latencies):
        median, p90 = stats_ms(samples)
        figures.append((median, p90))
        print(f"   {label:<26}{median:>10.1f}{p90:>9.1f}{max(samples) * 1000:>9.1f}")
    (b_med, b_p90), (d_med, d_p90) = figures
    print(f"   ratio targets-down / baseline: median {d_med / b_med:.2f}, p90 {d_p90 / b_p90:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cycles (a smoke run)")
    parser.add_argument("--skip-comfyui", action="store_true", help="only the core part")
    args = parser.parse_args()
    logging.getLogger("gpu_guard").setLevel(logging.ERROR)
    ok = bench_core(100 if args.quick else 500)
    if not args.skip_comfyui:
        print()
        bench_comfyui(8 if args.quick else 30)
    print("PASS" if ok else "FAIL: the down targets were not exercised")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
