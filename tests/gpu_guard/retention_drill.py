"""Runs prompts through ComfyUI's real execution.PromptQueue with the guard's hook installed and
reports how many of the objects the prompts carried are still alive afterwards.

Run in a fresh interpreter (it imports ComfyUI's modules): python retention_drill.py COMFYUI_DIR REPO
PROBE_FILE N. Prints one JSON line: {"prompts", "alive", "alive_kinds", "held_seen"}.
Every prompt carries weak-referenceable markers in its graph, its extra data (the UI workflow) and its
sensitive data (index 5, the API keys ComfyUI strips from history).
"""
import gc
import json
import os
import sys
import weakref


class Marker:
    def __init__(self, kind):
        self.kind = kind


def main(comfy_dir, repo, probe_path, count):
    sys.path[:0] = [comfy_dir, repo]
    os.chdir(comfy_dir)
    sys.argv = ["main.py", "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import execution
    from gpu_guard import Guard
    from gpu_guard.comfy.queue_hook import QueueHook

    class Server:
        client_id = None

        def queue_updated(self):
            pass

        def send_sync(self, *args, **kwargs):
            pass

    def write_probe(ratio):
        tmp = probe_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"used_bytes": int(ratio * 1e10), "total_bytes": int(1e10)}, f)
        os.replace(tmp, probe_path)

    write_probe(0.1)
    queue = execution.PromptQueue(Server())
    guard = Guard.from_environment(environ={"GPU_GUARD_PROBE": f"file:{probe_path}"})
    hook = QueueHook(guard, queue, lambda: [], hold_wait_s=0.0)
    hook.install()
    alive = weakref.WeakSet()
    history_result = {"outputs": {}, "meta": {}}
    status = execution.PromptQueue.ExecutionStatus(status_str="success", completed=True, messages=[])
    strip_sensitive = lambda item: item[:5] + item[6:]  # what ComfyUI's worker does
    held_seen = 0

    def put(n):
        markers = [Marker(kind) for kind in ("graph", "extra_data", "sensitive")]
        alive.update(markers)
        graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "marker": markers[0]}}}
        extra = {"client_id": "client", "extra_pnginfo": {"workflow": markers[1]}}
        queue.put((n, f"p{n}", graph, extra, ["1"], {"api_key_comfy_org": markers[2]}))

    def drain():
        while True:
            got = queue.get(timeout=0)
            if got is None:
                return
            queue.task_done(got[1], history_result, status=status, process_item=strip_sensitive)

    number, batch = 0, 50
    while number < count:
        paused = (number // batch) % 2 == 1  # every other batch arrives while the guard holds
        write_probe(0.95 if paused else 0.1)
        guard.poll_once()
        for _ in range(batch):
            put(number)
            number += 1
        if paused:
            for _ in range(3):
                assert queue.get(timeout=0) is None  # held: decision passes over the held set
            held_seen += len(guard.status()["held"])
            queue.delete_queue_item(lambda item: item[1] == f"p{number - 1}")  # one deleted while held
            write_probe(0.1)
            guard.poll_once()
        drain()
    queue.wipe_history()
    del put, drain
    gc.collect()
    kinds = sorted(m.kind for m in alive)
    print(json.dumps({"prompts": number, "alive": len(kinds), "alive_kinds": sorted(set(kinds)),
                      "held_seen": held_seen}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
