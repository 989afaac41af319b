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


def core_case(folder: str, name: str, targets, cycles: int) -> tuple:
    probe_path = os.path.join(folder, f"{name}.json")
    write_probe(probe_path, 0.5)
    config = GuardConfig(probe="file:" + probe_path, webhooks=targets or (), alert_pauses_per_day=1,
                         webhook_retries=20, webhook_timeout_s=5.0)
    guard = Guard(config, FileProbe(probe_path))
    ops = None
    if targets is not None:
        ops = OpsService(lambda: guard.config, os.path.join(folder, f"{name}-events.jsonl"),
                         snapshot=lambda: {"held": 0}, source="bench")
        guard.subscribe_events(ops.handle)
        ops.start()
    guard.poll_once()
    flips = []
    try:
        for i in range(cycles * 2):
            write_probe(probe_path, 0.9 if i % 2 == 0 else 0.1)
            start = time.perf_counter()
            guard.poll_once()
            flips.append(time.perf_counter() - start)
        heap = [(n, f"prompt-{n}", {}, {"client_id": "bench"}, []) for n in range(10)]
        decide = []
        for _ in range(2000):
            start = time.perf_counter()
            guard.decide_pass(entry_of(heap[0]), lambda: HeapView(list(heap)))
            decide.append(time.perf_counter() - start)
        firing = ops.status()["ops"]["alerts"]["firing"] if ops else []
        hooks = ops.status()["ops"]["webhooks"] if ops else []
    finally:
        if ops:
            ops.stop(0.5)
    return flips, decide, firing, hooks


def bench_core(cycles: int) -> bool:
    print(f"1. Core: one poll that flips the state ({cycles * 2} flips) and one dispatch decision (2000)")
    with tempfile.TemporaryDirectory() as folder, Receiver(script=[500]) as failing, \
            Receiver(script=[("hang", HANG_S)]) as hanging:
        rows = [("no operations layer (baseline)", core_case(folder, "none", None, cycles)),
                ("operations, no targets", core_case(folder, "quiet", (), cycles)),
                ("operations, 2 targets down", core_case(folder, "down", down_targets(failing, hanging), cycles))]
        requests_seen = len(failing.requests), len(hanging.requests)
    base_flip, base_decide = statistics.median(rows[0][1][0]), statistics.median(rows[0][1][1])
    print(f"   {'case':<34}{'flip median us':>15}{'ratio':>7}{'decide median us':>18}{'ratio':>7}")
    for label, (flips, decide, firing, hooks) in rows:
        flip, dec = statistics.median(flips), statistics.median(decide)
        print(f"   {label:<34}{flip * 1e6:>15.1f}{flip / base_flip:>7.2f}{dec * 1e6:>18.2f}{dec / base_decide:>7.2f}")
    down = rows[2][1]
    print(f"   while measuring, the down targets got {requests_seen[0]} (500) and {requests_seen[1]} (hanging) "
          f"requests; alerts firing: {down[2]}; failed attempts: {[h['failed_attempts'] for h in down[3]]}")
    return bool(down[2]) and requests_seen[0] > 0 and requests_seen[1] > 0


def comfy_latencies(base: Path, name: str, env: dict, cycles: int) -> list:
    from tests.gpu_guard.guard_drill import GuardDrill, tiny_workflow, wait_until
    from tests.harness.probe_file import ProbeFile
    from tests.harness.server import ComfyServer

    probe = ProbeFile(base / f"{name}-probe.json")
    probe.write_ratio(0.10)
    server = ComfyServer(base / name, name=f"bench_ops_{name}",
                         env={"GPU_GUARD_PROBE": f"file:{probe.path}", **env})
    latencies = []
    with server:
        drill = GuardDrill(server, probe)
        with server.events(client_id=f"bench-{name}") as stream:
            for i in range(cycles):
                drill.pause()
                prompt_id = server.post_prompt(tiny_workflow(i), client_id=f"bench-{name}")
                wait_until(lambda: drill.held_ids() == [prompt_id], what="the prompt held")
                mark = stream.mark()
                dropped = time.monotonic()
                probe.write_ratio(0.10)
                started = stream.wait_for("execution_start", lambda d: d.get("prompt_id") == prompt_id,
                                          timeout=30, since=mark)
                latencies.append(started.at - dropped)
                stream.wait_for_prompt_end(prompt_id, since=mark)
                drill.wait_state("running")
        status = drill.status()
    print(f"   {name}: alerts firing {status['ops']['alerts']['firing']}, webhooks "
          f"{[(w['name'], w['failed_attempts'], w['queued']) for w in status['ops']['webhooks']]}")
    return latencies


def bench_comfyui(cycles: int) -> None:
    print(f"2. Real ComfyUI: reading drops -> execution_start of the held prompt ({cycles} cycles a server)")
    with tempfile.TemporaryDirectory(prefix="bench_ops_") as folder, Receiver(script=[500]) as failing, \
            Receiver(script=[("hang", HANG_S)]) as hanging:
        base = Path(folder)
        common = {"GPU_GUARD_POLL_S": "0.25", "GPU_GUARD_ALERT_PAUSES_PER_DAY": "1"}
        baseline = comfy_latencies(base, "no-webhooks", common, cycles)
        down = comfy_latencies(base, "targets-down", {
            **common, "GPU_GUARD_WEBHOOKS": json.dumps(list(down_targets(failing, hanging))),
            "GPU_GUARD_WEBHOOK_TIMEOUT_S": "5", "GPU_GUARD_WEBHOOK_RETRIES": "20"}, cycles)
        print(f"   requests the down targets got: {len(failing.requests)} (500), {len(hanging.requests)} (hanging)")
    (b_med, b_p90), (d_med, d_p90) = stats_ms(baseline), stats_ms(down)
    print(f"   {'server':<26}{'median ms':>10}{'p90 ms':>9}")
    print(f"   {'no webhooks (baseline)':<26}{b_med:>10.1f}{b_p90:>9.1f}")
    print(f"   {'2 targets down':<26}{d_med:>10.1f}{d_p90:>9.1f}")
    print(f"   ratio targets-down / baseline: median {d_med / b_med:.2f}, p90 {d_p90 / b_p90:.2f} "
          "(the resume waits for the next poll: the spread is the poll phase)")


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
