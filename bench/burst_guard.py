"""Burst of concurrent /prompt against a paused real ComfyUI with a bounded hold queue.

Starts ComfyUI 0.3.75 with this pack (the test harness's server), pauses the guard through its file
probe, sets max_held, fires N concurrent POST /prompt and prints how many were held and how many got
429 with Retry-After; then resumes and checks that exactly the held ones ran. The baseline is the same
burst with the guard running (nothing refused), measured in the same run. Exit status 1 on a miss.

Run from the repo root:  python bench/burst_guard.py [--posts 200] [--max-held 20]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.gpu_guard.guard_drill import GuardDrill, post_burst  # noqa: E402
from tests.harness.probe_file import ProbeFile  # noqa: E402
from tests.harness.server import ComfyServer  # noqa: E402


def timed_burst(drill, posts, first_color):
    started = time.perf_counter()
    answers = post_burst(drill, posts, first_color)
    return answers, time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--max-held", type=int, default=20)
    parser.add_argument("--retry-after-s", type=int, default=7)
    parser.add_argument("--probe", choices=("file", "sim"), default="sim",
                        help="the guard's probe: the simulated GPU (default) or the static file probe")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="burst_guard_") as base:
        probe = ProbeFile(Path(base) / "probe.json")
        drill_probe = GuardDrill(None, probe, sim=args.probe == "sim")
        drill_probe.write_ratio(0.10)
        env = {"GPU_GUARD_PROBE": f"{args.probe}:{probe.path}", "GPU_GUARD_POLL_S": "0.05"}
        server = ComfyServer(Path(base) / "server", name="burst_guard", env=env)
        print(f"starting ComfyUI (log: {server.log_path}) ...", flush=True)
        with server:
            drill = GuardDrill(server, probe, sim=args.probe == "sim")
            drill.set_config(max_held=args.max_held, retry_after_s=args.retry_after_s)
            baseline, baseline_s = timed_burst(drill, args.posts, 20000)  # running: every post is queued
            drill.wait_idle(timeout=600)
            drill.pause()
            answers, burst_s = timed_burst(drill, args.posts, 30000)
            held = [a.json()["prompt_id"] for a in answers if a.status_code == 200]
            refused = [a for a in answers if a.status_code == 429]
            retry_ok = all(a.headers.get("Retry-After") == str(args.retry_after_s) for a in refused)
            pending = sorted(drill.pending_ids())
            drill.resume()
            ran = [pid for pid in held if server.wait_history(pid, timeout=120)["status"]["status_str"] == "success"]
    ok = (len(held) == args.max_held and len(refused) == args.posts - args.max_held and retry_ok
          and pending == sorted(held) and len(ran) == len(held)
          and sum(a.status_code == 200 for a in baseline) == args.posts)
    print(f"burst of {args.posts} concurrent POST /prompt, max_held {args.max_held}, {args.probe} probe")
    print(f"  guard running (baseline): {sum(a.status_code == 200 for a in baseline)} queued in {baseline_s:.2f} s")
    print(f"  guard paused:             {len(held)} held, {len(refused)} x 429 (Retry-After "
          f"{args.retry_after_s} s on all: {retry_ok}) in {burst_s:.2f} s ({burst_s / baseline_s:.2f}x the baseline)")
    print(f"  after resume:             {len(ran)} of the held ran, queue pending matched the held set: "
          f"{pending == sorted(held)}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
