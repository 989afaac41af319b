"""Cost of the prompt journal (issue 10) on ComfyUI's real PromptQueue, against the unjournaled
queue hook in the same run.

Imports `execution.PromptQueue` from the ComfyUI the tests use (0.3.75, CPU) and installs the pack's
queue hook on two queues: one with the journal (gpu_guard.comfy.persistence, a SQLite file in a
fresh folder on the repo's disk), one without. Times, per prompt:
1. put: what the journal adds to `/prompt` (ComfyUI's `put`; the journal writes in its
   `queue_updated` tap), with 0 / 100 / 1000 prompts already queued;
2. dispatch: the worker's guarded `get` plus `task_done` (the journal marks the prompt running,
   then deletes it), at the same depths;
3. for information, a burst of puts until the journal has committed it: the writer thread's work
   (encoding and SQLite), which runs off the queue's mutex, so /prompt and the worker do not wait for it.
Three prompt sizes: the tiny test graph, the DDColor person workflow with its UI workflow in
extra_pnginfo (as the frontend sends it), and a 200 KB extra_pnginfo. Best of five batches, the two
queues taking turns.
Target: the journal adds <= 1 ms to each put and each dispatch.

Run from the repo root: python bench/bench_journal.py   (imports torch and ComfyUI: ~10-40 s)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.bench_queue_hook import QuietServer, import_prompt_queue  # noqa: E402
from gpu_guard import Guard  # noqa: E402
from gpu_guard.comfy.persistence import QueuePersistence  # noqa: E402
from gpu_guard.comfy.queue_hook import QueueHook  # noqa: E402

TARGET_MS = 1.0
BATCH = 200
DEPTHS = (0, 100, 1000)


def prompt_sizes():
    tiny = ({"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}, {})
    api = json.loads((REPO_ROOT / "workflows/api/person.json").read_text())
    ui = json.loads((REPO_ROOT / "workflows/person.json").read_text())
    frontend = (api, {"extra_pnginfo": {"workflow": ui}})
    large = (api, {"extra_pnginfo": {"workflow": ui, "notes": "x" * 200_000}})
    return {"tiny graph": tiny, "person + UI workflow": frontend, "200 KB extra_pnginfo": large}


def make_item(number, graph, extra):
    return (number, f"prompt-{number}", graph, {"client_id": "bench", "create_time": 0, **extra}, ["2"], {})


class Rig:
    """A PromptQueue with the queue hook, and with or without the journal."""

    def __init__(self, PromptQueue, folder, journaled):
        probe = os.path.join(folder, "probe.json")
        with open(probe, "w") as f:
            json.dump({"used_bytes": 1_000_000_000, "total_bytes": 10_000_000_000}, f)
        environ = {"GPU_GUARD_PROBE": f"file:{probe}", "GPU_GUARD_PERSIST": "1" if journaled else "0"}
        self.guard = Guard.from_environment(config_file=os.path.join(folder, "gpu_guard.json"), environ=environ)
        self.guard.poll_once()
        self.server = QuietServer()
        self.server.number = 0
        self.queue = PromptQueue(self.server)
        self.status = PromptQueue.ExecutionStatus(status_str="success", completed=True, messages=[])
        self.hook = QueueHook(self.guard, self.queue, lambda: [])
        self.persistence = QueuePersistence(self.guard, self.server, self.queue, self.hook.original_get,
                                            sensitive_keys=lambda: ())
        self.persistence.open(self.hook)
        assert (self.persistence.journal is not None) == journaled
        self.hook.install()
        self.next_number = 0

    def fill(self, count, graph, extra):
        for _ in range(count):
            self.queue.put(make_item(self.next_number, graph, extra))
            self.next_number += 1

    def time_puts(self, depth, graph, extra):
        """Seconds per put with `depth` queued before the batch; the batch is dispatched after."""
        self.drain()
        self.fill(depth, graph, extra)
        self.flush()
        start = time.perf_counter()
        self.fill(BATCH, graph, extra)
        elapsed = time.perf_counter() - start
        return elapsed / BATCH

    def time_committed_puts(self, depth, graph, extra):
        """Seconds per put until the journal has committed the batch: the writer's work included."""
        self.drain()
        self.fill(depth, graph, extra)
        self.flush()
        start = time.perf_counter()
        self.fill(BATCH, graph, extra)
        self.flush()
        return (time.perf_counter() - start) / BATCH

    def flush(self):
        if self.persistence.journal is not None:
            assert self.persistence.journal.flush(60)

    def time_dispatches(self, depth, graph, extra):
        self.drain()
        self.fill(depth + BATCH, graph, extra)
        self.flush()
        start = time.perf_counter()
        for _ in range(BATCH):
            _item, task = self.queue.get(timeout=0)
            self.queue.task_done(task, {}, status=self.status)
        return (time.perf_counter() - start) / BATCH

    def drain(self):
        while self.queue.queue:
            _item, task = self.queue.get(timeout=0)
            self.queue.task_done(task, {}, status=self.status)
        self.queue.history.clear()


def best_pair(plain_fn, journaled_fn, *args):
    """Best of five, the two rigs taking turns, so that a change of the machine's load hits both."""
    plain, journaled = [], []
    for _ in range(5):
        plain.append(plain_fn(*args))
        journaled.append(journaled_fn(*args))
    return min(plain), min(journaled)


def main() -> int:
    PromptQueue = import_prompt_queue()
    scratch = REPO_ROOT / ".cache"
    scratch.mkdir(exist_ok=True)
    rows, writer_rows = [], []
    with tempfile.TemporaryDirectory(dir=scratch) as plain_dir, tempfile.TemporaryDirectory(dir=scratch) as j_dir:
        fs = subprocess.run(["df", "-T", j_dir], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
        plain = Rig(PromptQueue, plain_dir, journaled=False)
        journaled = Rig(PromptQueue, j_dir, journaled=True)
        for size, (graph, extra) in prompt_sizes().items():
            for depth in DEPTHS:
                for case, method in (("put (/prompt)", "time_puts"), ("dispatch", "time_dispatches")):
                    base, with_journal = best_pair(getattr(plain, method), getattr(journaled, method),
                                                   depth, graph, extra)
                    rows.append((f"{case}, {size}, {depth} queued", base, with_journal))
            base, committed = best_pair(plain.time_puts, journaled.time_committed_puts, 0, graph, extra)
            writer_rows.append((f"put until committed, {size}, 0 queued", base, committed))
        journaled.drain()
        assert journaled.persistence.journal.pending_count() == 0
        print(f"prompt journal on ComfyUI's PromptQueue with the queue hook (per prompt, best of 5 batches of "
              f"{BATCH}; journal on {fs}, SQLite {__import__('sqlite3').sqlite_version}, WAL, synchronous=NORMAL)")
    print(f"{'case':52} {'no journal':>11} {'journal':>11} {'added':>10} {'ratio':>7}")
    for label, base, with_journal in rows:
        print(f"{label:52} {base * 1e6:8.1f} us {with_journal * 1e6:8.1f} us "
              f"{(with_journal - base) * 1e6:7.1f} us {with_journal / base:6.2f}x")
    print("the writer thread's share, off the queue's mutex (a burst of puts, then the journal flushed):")
    for label, base, committed in writer_rows:
        print(f"{label:52} {base * 1e6:8.1f} us {committed * 1e6:8.1f} us "
              f"{(committed - base) * 1e6:7.1f} us {committed / base:6.2f}x")
    worst = max(with_journal - base for _label, base, with_journal in rows) * 1e3
    print(f"largest time the journal adds per put or dispatch: {worst:.3f} ms (target <= {TARGET_MS} ms): "
          f"{'PASS' if worst <= TARGET_MS else 'FAIL'}")
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
