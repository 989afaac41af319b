"""Benchmark of the VRAM guard's cost, against baselines measured in the same run.

1. Time added per dispatch: ComfyUI's queue get (a heap pop under a lock) alone, then the same get
   with the guard's hook work (one decision pass, as the adapter makes it) in front of it, in each
   guard state. Target: < 50 us added per dispatch.
2. A burst of 2,000 puts while paused: the held-set bookkeeping per put (the adapter's queue_updated
   tap), against the same puts with the guard running, same run. It must stay linear (no sort per put).
3. Resume latency: the time from the probe file dropping below resume_at to a worker blocked in
   wait_for_change seeing "running", at the default settings (poll_s 1 s; while paused the guard
   polls every 0.1 s). Target: p99 <= 200 ms over 50 resumes.

Run: python bench/bench_guard.py [--quick]
"""
from __future__ import annotations

import argparse
import heapq
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpu_guard.comfy.queue_ops import HeapView, entry_of  # noqa: E402
from gpu_guard.config import GuardConfig  # noqa: E402
from gpu_guard.guard import Guard  # noqa: E402
from gpu_guard.probes import FileProbe  # noqa: E402

GIB = 1 << 30
GRAPH = {"1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
         "2": {"class_type": "NodeWithoutEstimator", "inputs": {"image": ["1", 0]}},
         "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}


def write_probe(path: str, ratio: float) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"used_bytes": round(ratio * 80 * GIB), "total_bytes": 80 * GIB}, f)
    os.replace(tmp, path)


class BareQueue:
    """ComfyUI's PromptQueue.get reduced to its work: a heap pop under the queue's lock."""

    def __init__(self, pending: int):
        self.lock = threading.RLock()
        self.heap = [(n, f"prompt-{n}", GRAPH, {"client_id": "bench"}, []) for n in range(pending)]
        heapq.heapify(self.heap)

    def get(self):
        with self.lock:
            item = heapq.heappop(self.heap)
            heapq.heappush(self.heap, item)  # keep the queue the same size for the next round
            return item

    def guarded_get(self, guard: Guard):
        with self.lock:
            heap = self.heap
            guard.decide_pass(entry_of(heap[0]), lambda: HeapView(list(heap)))  # what the hook does
            item = heapq.heappop(self.heap)
            heapq.heappush(self.heap, item)
            return item


def per_call_us(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(5):  # best of five: the least disturbed estimate on a shared machine
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1e6


def bench_dispatch(folder: str, rounds: int) -> list:
    probe_path = os.path.join(folder, "dispatch.json")
    rows = []
    for label, ratio, pending in [("running, 1 pending", 0.5, 1), ("running, 10 pending", 0.5, 10),
                                  ("paused, 10 held", 0.9, 10), ("paused, 100 held", 0.9, 100)]:
        write_probe(probe_path, ratio)
        guard = Guard(GuardConfig(probe="file:" + probe_path), FileProbe(probe_path))
        guard.poll_once()
        queue = BareQueue(pending)
        scaled = max(100, rounds * 10 // max(10, pending))  # the same work per case, whatever the queue
        baseline = per_call_us(queue.get, scaled)
        guarded = per_call_us(lambda: queue.guarded_get(guard), scaled)
        rows.append((label, baseline, guarded))
    return rows


def bench_burst(folder: str, puts: int) -> list:
    """(state, seconds for `puts` queue changes) with the guard running and paused."""
    rows = []
    for state, ratio in (("running", 0.5), ("paused", 0.9)):
        probe_path = os.path.join(folder, f"burst-{state}.json")
        write_probe(probe_path, ratio)
        guard = Guard(GuardConfig(probe="file:" + probe_path), FileProbe(probe_path))
        guard.poll_once()
        heap, mutex = [], threading.RLock()
        guard.attach_queue(mutex, lambda: HeapView(list(heap)))  # as the adapter attaches ComfyUI's queue
        start = time.perf_counter()
        for n in range(puts):
            with mutex:  # ComfyUI's put: the push and the queue_updated tap under the queue's mutex
                heapq.heappush(heap, (n, f"prompt-{n}", GRAPH, {"client_id": "bench"}, []))
                guard.queue_changed()
        rows.append((state, time.perf_counter() - start, len(guard.status()["held"])))
    return rows


def bench_resume(folder: str, poll_s: float, cycles: int) -> list:
    probe_path = os.path.join(folder, f"resume-{poll_s}.json")
    write_probe(probe_path, 0.5)
    guard = Guard(GuardConfig(probe="file:" + probe_path, poll_s=poll_s), FileProbe(probe_path))
    guard.start()
    latencies = []
    try:
        for _ in range(cycles):
            write_probe(probe_path, 0.9)
            guard.request_poll()
            while guard.state != "paused":
                guard.wait_for_change(1.0)
            time.sleep(random.uniform(0, guard.poll_interval()))  # the drop lands anywhere in the poll cycle
            since = guard.version
            dropped_at = time.perf_counter()
            write_probe(probe_path, 0.1)
            while guard.state != "running":
                guard.wait_for_change(poll_s + 1.0, since)
                since = guard.version
            latencies.append(time.perf_counter() - dropped_at)
    finally:
        guard.stop()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and cycles (a smoke run)")
    args = parser.parse_args()
    logging.getLogger("gpu_guard").setLevel(logging.ERROR)  # a transition per cycle would flood the table
    rounds, cycles, puts = (2000, 10, 500) if args.quick else (20000, 50, 2000)
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        print("Time added per dispatch (best of 5; baseline = bare heap pop under a lock, same run)")
        print(f"{'case':<22}{'baseline us':>12}{'guarded us':>12}{'added us':>10}{'ratio':>8}")
        for label, baseline, guarded in bench_dispatch(folder, rounds):
            added = guarded - baseline
            print(f"{label:<22}{baseline:>12.2f}{guarded:>12.2f}{added:>10.2f}{guarded / baseline:>8.1f}")
            if label.startswith("running") and added >= 50:
                ok = False
        print("target: < 50 us added per dispatch (running rows). The paused rows are one hold check of")
        print("the whole queue, done at each wake-up of the waiting worker, not per dispatch.")
        print()
        print(f"A burst of {puts} puts (the queue_updated tap per put; baseline = the guard running)")
        rows = bench_burst(folder, puts)
        for state, seconds, held in rows:
            print(f"{state:<8} {seconds * 1000:8.1f} ms  {seconds / puts * 1e6:7.1f} us/put  {held} held")
        ratio = rows[1][1] / rows[0][1]
        print(f"paused/running {ratio:.1f}x; target: linear (a sort per put made it quadratic)")
        ok = ok and rows[1][2] == puts
        print()
        print("Resume latency after the reading drops (file probe, waiter blocked in wait_for_change)")
        poll_s = GuardConfig.poll_s  # the default
        lat = sorted(bench_resume(folder, poll_s, cycles))
        p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
        print(f"poll_s={poll_s:g} (paused: every {min(poll_s, 0.1):g} s) n={len(lat)} median "
              f"{statistics.median(lat) * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms  max {lat[-1] * 1000:.1f} ms  "
              f"target p99 <= 200 ms  p99/target {p99 / 0.2:.2f}")
        ok = ok and p99 <= 0.2
    print("PASS" if ok else "FAIL: a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
