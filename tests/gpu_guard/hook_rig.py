"""Queue items and waits on the guard for the queue hook's unit tests (their `rig` fixture, the hook on
a stand-in PromptQueue with a real Guard reading a probe file, is in conftest.py)."""
import time


def item(number, prompt_id, class_type="EmptyImage"):
    return (number, prompt_id, {"1": {"class_type": class_type, "inputs": {}}}, {}, ["1"], {})


def wait_until_read(guard, ratio, timeout=5.0):
    deadline = time.monotonic() + timeout
    while guard.reading is None or abs(guard.reading.ratio - ratio) > 1e-9:
        assert time.monotonic() < deadline, f"guard never read {ratio}"
        time.sleep(0.01)


def wait_state(guard, state, timeout=5.0):
    deadline = time.monotonic() + timeout
    while guard.state != state:
        assert time.monotonic() < deadline, f"guard never reached {state}"
        time.sleep(0.01)


def next_prompt(queue, timeout=2.0):
    """Calls get as ComfyUI's worker does (again after every None) until it hands out a prompt."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        popped = queue.get(timeout=0.25)
        if popped is not None:
            return popped
    raise AssertionError(f"no prompt was handed out within {timeout} s")
