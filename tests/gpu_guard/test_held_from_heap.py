"""The held set is derived from ComfyUI's heap under the queue's mutex: while the guard runs a queue change
copies nothing; a pause holds what is queued at that moment; and every thread that takes both locks
takes them in one order (a drill with all of them at once)."""
import threading
import time

from tests.gpu_guard.hook_rig import item, next_prompt, wait_state


class CountingHeap(list):
    """ComfyUI's heap, counting how often it is copied or walked (list(heap) iterates it)."""

    def __init__(self):
        super().__init__()
        self.walks = 0

    def __iter__(self):
        self.walks += 1
        return super().__iter__()


def test_a_queue_change_while_running_copies_nothing_and_a_pause_holds_what_is_queued(rig):
    guard, queue, _hook, probe, _models = rig
    queue.queue = CountingHeap()
    for n in range(50):
        queue.put(item(n, f"p{n}"))
    assert queue.queue.walks == 0  # the tap copied the heap at every put before the held set was derived
    assert guard.status()["held"] == [] and guard.status()["pending"] == 50
    probe.write_ratio(0.95)  # the poll thread closes the gate; no queue change follows
    wait_state(guard, "paused")
    held = guard.status()["held"]
    assert sorted(h["prompt_id"] for h in held) == sorted(f"p{n}" for n in range(50))


def test_a_deleted_prompt_leaves_the_held_set_while_paused(rig):
    guard, queue, _hook, probe, _models = rig
    probe.write_ratio(0.95)
    wait_state(guard, "paused")
    for n in range(3):
        queue.put(item(n, f"p{n}"))
    with queue.mutex:  # as ComfyUI's delete_queue_item
        queue.queue.remove(next(i for i in queue.queue if i[1] == "p1"))
        queue.server.queue_updated()
    assert sorted(h["prompt_id"] for h in guard.status()["held"]) == ["p0", "p2"]


def test_every_thread_takes_the_queue_lock_before_the_guards_no_deadlock(rig):
    """The worker, puts, the poll thread, status reads, operator pause/resume and settings changes all
    at once, while the memory moves across the thresholds: each must keep making progress."""
    guard, queue, hook, probe, _models = rig
    stop = threading.Event()
    progress = {"puts": 0, "runs": 0, "status": 0, "operator": 0, "moves": 0}
    errors = []

    def loop(name, step):
        def run():
            try:
                while not stop.is_set():
                    step()
                    progress[name] += 1
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(f"{name}: {type(error).__name__}: {error}")
        return threading.Thread(target=run, name=name, daemon=True)

    counter = iter(range(10**9))

    def put():
        n = next(counter)
        queue.put(item(n, f"d{n}"))
        time.sleep(0.001)

    def work():
        popped = queue.get(timeout=0.05)
        if popped is not None:
            with queue.mutex:
                queue.currently_running.pop(popped[1])
                queue.server.queue_updated()

    def read_status():
        guard.status()
        guard.ready()
        guard.metrics_text()

    def operate():
        guard.operator_pause("drill")
        guard.operator_resume("drill")

    ratios = iter([0.95, 0.5] * 10**6)

    def move():
        probe.write_ratio(next(ratios))
        time.sleep(0.02)

    threads = [loop("puts", put), loop("runs", work), loop("status", read_status), loop("operator", operate),
               loop("moves", move)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    before = dict(progress)
    time.sleep(1.0)  # everyone must still move: a deadlock freezes at least two of them
    after = dict(progress)
    stop.set()
    for thread in threads:
        thread.join(5.0)
    assert not errors, errors
    assert all(not thread.is_alive() for thread in threads), "a thread is stuck (lock-order deadlock)"
    stalled = [name for name in after if after[name] == before[name]]
    assert not stalled, f"no progress in the last second: {stalled} ({before} -> {after})"
    # the guard still works: resume and hand out what is queued
    probe.write_ratio(0.1)
    wait_state(guard, "running")
    queue.put(item(-1, "last"))
    assert next_prompt(queue, timeout=5.0) is not None
