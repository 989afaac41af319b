"""The VRAM guard on a real GPU (a prepared check, at most about 10 minutes): a real ComfyUI on CUDA
with the NVML probe, a DDColor model loaded, a heavy prompt (the building preset at 1280) that must run
without a pause, then a foreign process holding a CUDA tensor that takes the device over 0.85, which
must pause the guard, and its exit, which must resume it. Prints the figures; exits 1 on a miss.

Run on a CUDA host from the repo root:  python bench/gpu_guard_real_gpu.py [--probe nvml|torch]
Without a GPU it says so and exits 2 (no figures are made up).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.gpu_guard.guard_drill import GuardDrill, wait_until  # noqa: E402
from tests.harness.server import ComfyServer  # noqa: E402
from tests.harness.weights import place_checkpoint  # noqa: E402
from tests.nodes.comfy_io import api_workflow, as_shipped, node_of  # noqa: E402

# A foreign process: allocates until the device reads `target` used, then waits for stdin to close.
FOREIGN = """
import sys, torch
target = float(sys.argv[1])
free, total = torch.cuda.mem_get_info()
want = int(target * total) - (total - free)
held = torch.empty(max(0, want), dtype=torch.uint8, device="cuda")
print("held", held.numel(), flush=True)
sys.stdin.read()
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", default="nvml", choices=("nvml", "torch"))
    parser.add_argument("--checkpoint", help="a DDColor checkpoint (default: a synthetic tiny one)")
    args = parser.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print("no GPU was available: this check needs a CUDA device; nothing was measured")
        return 2
    from tests.harness.weights import write_synthetic_checkpoint
    with tempfile.TemporaryDirectory(prefix="guard_gpu_") as base:
        checkpoint = args.checkpoint or write_synthetic_checkpoint(Path(base) / "ddcolor_synth_tiny.pth", "tiny",
                                                                   source="pack")
        server = ComfyServer(Path(base) / "server", name="guard_gpu", cpu=False,
                             env={"GPU_GUARD_PROBE": args.probe}, extra_args=("--verbose", "DEBUG"))
        server.checkpoint_name = place_checkpoint(checkpoint, server.models_dir).name
        with server:
            drill = GuardDrill(server, None)
            workflow = as_shipped(server, api_workflow("building"), server.checkpoint_name)
            node_of(workflow, "DDColorColorize")["inputs"]["size"] = 1280
            samples, stop = [], threading.Event()

            def sample():
                while not stop.is_set():
                    samples.append(drill.status())
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            entry = server.wait_history(server.post_prompt(workflow), timeout=300)
            stop.set()
            sampler.join(5)
            states = {s["state"] for s in samples}
            peak = max((s["reading"] or {}).get("device_ratio", 0) for s in samples)
            prompt_peak = max((s["reading"] or {}).get("running_prompt_bytes", 0) for s in samples)
            idle = drill.status()["reading"]["reclaimable"]["idle_models_bytes"]
            print(f"heavy prompt: {entry['status']['status_str']}, states seen {sorted(states)}, device peak "
                  f"{peak:.3f}, running prompt's own bytes peak {prompt_peak / 2**20:.0f} MiB, model left loaded "
                  f"{idle / 2**20:.0f} MiB")
            ok = entry["status"]["status_str"] == "success" and states == {"running"}

            foreign = subprocess.Popen([sys.executable, "-c", FOREIGN, "0.92"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
            print("foreign process:", foreign.stdout.readline().strip())
            started = time.monotonic()
            paused = wait_until(lambda: drill.status()["state"] == "paused", timeout=10, what="the pause")
            pause_s = time.monotonic() - started
            foreign.stdin.close()
            foreign.wait(30)
            started = time.monotonic()
            wait_until(lambda: drill.status()["state"] == "running", timeout=10, what="the resume")
            resume_s = time.monotonic() - started
            print(f"foreign tensor to 0.92: paused after {pause_s * 1000:.0f} ms; foreign exit: resumed after "
                  f"{resume_s * 1000:.0f} ms")
            ok = ok and bool(paused)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
