"""Soak of the VRAM guard inside a real ComfyUI: 1,000 prompts over 50 pause/resume cycles by default.

Starts ComfyUI 0.3.75 with this pack (the test harness's server), drives the guard through its
file probe, submits prompts while paused (some to the front) and while running, deletes a random
share of them, and checks that every prompt either completed exactly once or was deleted and never
ran, and that none started while the guard was paused. Prints the figures; exit status 1 on a failure.

Run from the repo root:  python bench/soak_guard.py [--prompts 1000] [--cycles 50] [--poll-s 1.0]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.gpu_guard.guard_drill import GuardDrill  # noqa: E402
from tests.gpu_guard.soak import run_soak  # noqa: E402
from tests.harness.probe_file import ProbeFile  # noqa: E402
from tests.harness.server import ComfyServer  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--poll-s", type=float, default=1.0, help="the guard's poll interval (default: the guard's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--delete-share", type=float, default=0.2)
    parser.add_argument("--probe", choices=("file", "sim"), default="sim",
                        help="the guard's probe: the simulated GPU (default) or the static file probe")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.prompts < args.cycles:
        parser.error("need at least one cycle and one prompt per cycle")

    with tempfile.TemporaryDirectory(prefix="soak_guard_") as base:
        probe = ProbeFile(Path(base) / "probe.json")
        drill_probe = GuardDrill(None, probe, sim=args.probe == "sim")
        drill_probe.write_ratio(0.10)
        env = {"GPU_GUARD_PROBE": f"{args.probe}:{probe.path}", "GPU_GUARD_POLL_S": str(args.poll_s)}
        server = ComfyServer(Path(base) / "server", name="soak_guard", env=env)
        print(f"starting ComfyUI (log: {server.log_path}) ...", flush=True)
        with server:
            report = run_soak(GuardDrill(server, probe, sim=args.probe == "sim"), prompts=args.prompts, cycles=args.cycles,
                              seed=args.seed, delete_share=args.delete_share)
    print(f"VRAM guard soak on the {args.probe} probe (poll interval {args.poll_s:g} s, seed {args.seed}, pid {os.getpid()})")
    for line in report.lines():
        print("  " + line)
    lat = sorted(report.resume_latencies_s)
    if lat:
        p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
        print(f"  resume latency p99     {p99 * 1000:.0f} ms over {len(lat)} resumes (target at the default "
              f"poll_s 1 s: p99 <= 200 ms; this run polls every {min(args.poll_s, 0.1):g} s while paused)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
