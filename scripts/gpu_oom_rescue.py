"""A real out-of-memory on a GPU, rescued: the prepared check of the OOM rescue on a CUDA host.

    .venv/bin/python scripts/gpu_oom_rescue.py [--fraction 0.6] [--timeout 300]

It starts ComfyUI 0.3.75 with this pack on the GPU (the tests' harness, torch probe), takes most of the
GPU's free memory with a tensor in this process (the "foreign" load), and queues a prompt whose node
(OomDrillAllocate, tests/gpu_guard/oom_drill_pack) allocates `fraction` of the device: more than is
left, so torch raises its real OutOfMemoryError inside ComfyUI. The guard puts the prompt back and
holds it; the script checks it is pending and held with its learned need, frees the foreign tensor,
and waits for the prompt to end in /history as a success after exactly one rescue. It prints the
figures (need learned, free memory while held, time from the free to the run's end) as JSON.

Without a CUDA device it says so and exits with status 2 (nothing is measured).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NO_GPU = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, default=0.6, help="share of the device the node allocates")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each step")
    return parser.parse_args(argv)


def cuda_device():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def wait_until(predicate, timeout, what):
    from tests.gpu_guard.guard_drill import wait_until as harness_wait

    return harness_wait(predicate, timeout, interval=0.1, what=what)


def run(args) -> dict:
    torch = cuda_device()
    if torch is None:
        print(json.dumps({"gpu": None, "result": "no CUDA device: nothing measured"}))
        sys.exit(NO_GPU)
    from tests.gpu_guard.test_oom_rescue import OOM_PACK
    from tests.harness.provision import build_server

    free, total = torch.cuda.mem_get_info()
    need = int(total * args.fraction)
    base = Path(tempfile.mkdtemp(prefix="gpu_oom_rescue_"))
    run_log = base / "runs.log"
    server = build_server(base, name="gpu-oom-rescue", cpu=False,
                          env={"GPU_GUARD_PROBE": "torch", "GPU_GUARD_POLL_S": "0.1", "JOURNAL_DRILL_LOG": str(run_log)})
    server.folders.custom_nodes.mkdir(parents=True, exist_ok=True)
    (server.folders.custom_nodes / "oom_drill_nodes").symlink_to(OOM_PACK, target_is_directory=True)
    with server.start():
        client = server
        free, total = torch.cuda.mem_get_info()
        foreign = torch.empty(max(0, free - need // 2), dtype=torch.uint8, device="cuda")  # leaves need/2 free
        foreign.fill_(1)
        workflow = {"1": {"class_type": "OomDrillAllocate", "inputs": {"tag": "gpu", "bytes": need}}}
        prompt_id = client.post_prompt(workflow)
        status = lambda: client.get_json("/gpu_guard/status")["adapter"]["oom_rescue"]  # noqa: E731
        waiting = wait_until(lambda: status()["waiting"], args.timeout, "the rescued prompt held")
        pending = [item[1] for item in client.queue()["queue_pending"]]
        assert prompt_id in pending, f"the rescued prompt is not pending: {pending}"
        time.sleep(2.0)
        assert client.history(prompt_id) is None, "the held prompt ran before the memory was freed"
        del foreign
        torch.cuda.empty_cache()
        freed_at = time.monotonic()
        entry = client.wait_history(prompt_id, timeout=args.timeout)
        ended_s = time.monotonic() - freed_at
        starts = run_log.read_text().splitlines().count("start gpu")
        final = status()
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert starts == 2 and final["counts"]["rescued"] == 1 and final["counts"]["recovered"] == 1, (starts, final)
    return {"gpu": torch.cuda.get_device_name(0), "total_bytes": total, "node_allocates_bytes": need,
            "held_waiting_for_bytes": waiting["need_bytes"], "need_source": waiting["need_source"],
            "free_while_held_bytes": waiting["free_bytes"], "runs": starts,
            "seconds_from_free_to_success": round(ended_s, 2), "learned_peaks": final["learned_peaks"]}


if __name__ == "__main__":
    print(json.dumps(run(parse_args()), indent=2))
