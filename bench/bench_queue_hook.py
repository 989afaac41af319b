"""Cost of the adapter's queue hook on ComfyUI's real PromptQueue, against the bare queue in the same run.

Imports `execution.PromptQueue` from the ComfyUI the tests use (0.3.75, CPU), then times:
1. dispatch: `get` of ComfyUI's own queue vs. the guarded `get` (a fresh probe reading, the guard's
   decision, the pop through ComfyUI's `get`), with the guard running, 1 / 10 / 100 pending, on the
   file probe and on the simulated GPU (sim:PATH);
2. hold round: the guarded `get(timeout=0)` while paused (decide every held prompt, return None);
3. put: ComfyUI's `put` vs. `put` with the `queue_updated` tap (the held-set bookkeeping);
4. the decision alone: `Guard.decide_pass` with its fresh probe reading, without the hook around it.
Each case: the same queue depth before every call, best of five batches. Target: < 50 us per dispatch.
The sim cases measure a device on which no process changed its bytes for RACY_S (between prompts): right
after a load, run or free, its reading also lists (and, for this process's change, writes) the shared
folder.

Run from the repo root: python bench/bench_queue_hook.py   (imports torch and ComfyUI: ~10-40 s)
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from gpu_guard import Guard  # noqa: E402
from gpu_guard.comfy import queue_ops  # noqa: E402
from gpu_guard.comfy.queue_hook import QueueHook  # noqa: E402
from gpu_guard.probes.sim_shared import RACY_S  # noqa: E402
from tests.harness.comfyui_install import ensure_comfyui  # noqa: E402

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
         "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}


def import_prompt_queue():
    comfy_dir = ensure_comfyui()
    sys.path.insert(0, str(comfy_dir))
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options
    comfy.options.enable_args_parsing()
    import execution
    return execution.PromptQueue


class QuietServer:
    """The server side of PromptQueue: ComfyUI's queue_updated sends a websocket message; both the
    baseline and the guarded queue pay the same for it, so here it does nothing."""

    def queue_updated(self):
        pass


def item(number):
    return (number, f"prompt-{number}", GRAPH, {"client_id": "bench"}, ["2"], {})


def best_us(fn, rounds):
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1e6


def refilled_get(queue, get):
    """One dispatch at constant depth: get, mark the task done, put the same prompt back."""

    def run():
        popped, task = get(timeout=0)
        queue.currently_running.pop(task)
        queue.put(popped)
    return run


def main() -> int:
    PromptQueue = import_prompt_queue()
    with tempfile.TemporaryDirectory() as folder:
        probe = os.path.join(folder, "probe.json")

        def reading(ratio, kind):
            with open(probe + ".tmp", "w") as f:
                used = round(ratio * 1e10)
                json.dump({"used_bytes": used, "total_bytes": 10_000_000_000} if kind == "file" else
                          {"foreign_bytes": used, "total_bytes": 10_000_000_000}, f)
            os.replace(probe + ".tmp", probe)

        def guard_at(ratio, kind="file"):
            reading(ratio, kind)
            guard = Guard.from_environment(environ={"GPU_GUARD_PROBE": f"{kind}:{probe}", "GPU_GUARD_FAST_LANE": "0"})
            guard.poll_once()
            if kind == "sim":
                # between loads, runs and frees nothing on the shared device changes: its folder is
                # listed again only when it changed, once the last change is RACY_S old
                time.sleep(RACY_S + 0.1)
                guard.poll_once()
            return guard

        rows = []
        for pending, kind in ((1, "file"), (10, "file"), (100, "file"), (10, "sim"), (100, "sim")):
            bare = PromptQueue(QuietServer())
            guarded = PromptQueue(QuietServer())
            for n in range(pending):
                bare.put(item(n))
                guarded.put(item(n))
            hook = QueueHook(guard_at(0.5, kind), guarded, lambda: [])
            hook.install()
            rounds = 2000
            base = best_us(refilled_get(bare, bare.get), rounds)
            with_hook = best_us(refilled_get(guarded, guarded.get), rounds)
            rows.append((f"dispatch, running, {pending} pending, {kind}", base, with_hook))

        # the decision alone (Guard.decide_pass with its fresh probe reading), without the hook around it
        decisions = []
        for kind in ("file", "sim"):
            guard = guard_at(0.5, kind)
            first = queue_ops.entry_of(item(0))
            decisions.append((f"decide_pass, running, {kind}",
                              best_us(lambda: guard.decide_pass(first, None), 5000)))

        for held in (10, 100):
            queue = PromptQueue(QuietServer())
            for n in range(held):
                queue.put(item(n))
            hook = QueueHook(guard_at(0.95), queue, lambda: [], hold_wait_s=0.0)
            hook.install()
            assert queue.get(timeout=0) is None
            rows.append((f"hold round, paused, {held} held", None, best_us(lambda: queue.get(timeout=0), 500)))

        for held in (10, 100):
            bare = PromptQueue(QuietServer())
            guarded = PromptQueue(QuietServer())
            QueueHook(guard_at(0.95), guarded, lambda: []).install()
            for n in range(held):
                bare.put(item(n))
                guarded.put(item(n))

            def put_delete(queue):
                def run():
                    queue.put(item(-1))
                    queue.delete_queue_item(lambda i: i[0] == -1)
                return run
            rows.append((f"put + delete, paused, {held} held", best_us(put_delete(bare), 500),
                         best_us(put_delete(guarded), 500)))

    print("VRAM guard queue hook on ComfyUI's PromptQueue (times per call, best of 5)")
    print(f"{'case':44} {'ComfyUI alone':>14} {'with the hook':>14} {'added':>10} {'ratio':>7}")
    for label, base, hooked in rows:
        if base is None:
            print(f"{label:44} {'-':>14} {hooked:11.1f} us {'':>10} {'':>7}")
        else:
            print(f"{label:44} {base:11.1f} us {hooked:11.1f} us {hooked - base:7.1f} us {hooked / base:6.1f}x")
    for label, cost in decisions:
        print(f"{label:44} {'-':>14} {cost:11.1f} us   (the decision and its fresh reading, no hook)")
    worst = max(h - b for _l, b, h in rows if b is not None and _l.startswith("dispatch"))
    print(f"largest time added per dispatch: {worst:.1f} us (target < 50 us): {'PASS' if worst < 50 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
