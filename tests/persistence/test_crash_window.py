"""A 200 from /prompt means journaled: kill -9 at a random moment inside a burst of concurrent
/prompt (real ComfyUI 0.3.75 processes, the same user directory), 20 times; every prompt id that got
a 200 is restored and completes exactly once after the reading drops.

The kill never waits for the journal. Odd runs kill at a random moment between the first post and
the last answer of the previous complete burst (an unkilled burst measures it first); even runs kill
right after a random number (1 to 50) of answers, plus up to KILL_JITTER_S - group commit sends
many answers at once, so this is the moment when some ids are out and others are being committed.
Should a burst be answered before its moment, the kill comes at most KILL_JITTER_S after its last
answer. One ComfyUI install and one set of folders serve all runs; each run is a SIGKILL and a start.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.gpu_guard.guard_drill import wait_until
from tests.persistence.journal_drill import drill_workflow

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

RUNS = 20
BURST = 50
LARGE_EVERY = 5  # every 5th post carries a 200 KB graph
LARGE_BYTES = 200_000
KILL_JITTER_S = 0.02  # well inside the bound of 50 ms after the last 200


def burst_with_a_kill(drill, run: int, kill_at, kill_after, rng: random.Random) -> tuple:
    """BURST concurrent posts; SIGKILL the server `kill_at` seconds after the first post, or once
    `kill_after` posts have answered (plus up to KILL_JITTER_S), or within KILL_JITTER_S of the last
    answer if that comes first; no kill when both are None. Returns ({tag: prompt id} of the posts
    that got a 200, (first, last) answer times, whether the kill landed before the last answer)."""
    url, pid = drill.server.url, drill.server.process.pid
    answered, lock, all_answered = [0], threading.Lock(), threading.Event()
    kth_answer = threading.Event()
    started, answer_times = time.monotonic(), []

    def post(i):
        tag = f"r{run}-{i}"
        body = {"prompt": drill_workflow(tag, payload_bytes=LARGE_BYTES if i % LARGE_EVERY == 0 else 0)}
        try:
            response = requests.post(url + "/prompt", json=body, timeout=60)
        except requests.RequestException:
            response = None  # in flight at the kill: no id was promised
        with lock:
            answered[0] += 1
            if response is not None:
                answer_times.append(time.monotonic() - started)
            if answered[0] == kill_after:
                kth_answer.set()
            if answered[0] == BURST:
                all_answered.set()
        if response is not None and response.status_code == 200:
            return tag, response.json()["prompt_id"]
        assert response is None, f"{tag}: {response.status_code} {response.text[:200]}"
        return tag, None

    killed_during = [False]

    def killer():
        if kill_after is not None:
            kth_answer.wait(120)
            time.sleep(rng.uniform(0, KILL_JITTER_S))
        elif all_answered.wait(kill_at):
            time.sleep(rng.uniform(0, KILL_JITTER_S))
        killed_during[0] = not all_answered.is_set()
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=killer)
    killing = kill_at is not None or kill_after is not None
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        if killing:
            thread.start()
        results = list(pool.map(post, range(BURST)))
    if killing:
        thread.join()
    accepted = {tag: prompt_id for tag, prompt_id in results if prompt_id is not None}
    times = (min(answer_times), max(answer_times)) if answer_times else None
    return accepted, times, killed_during[0]


def run_restored(drill, prompt_ids) -> None:
    """Drop the reading and wait until these prompts have run; then raise it again (paused)."""
    drill.read_ratio(0.1)
    if prompt_ids:
        drill.wait_done(sorted(prompt_ids))
    drill.read_ratio(0.9)
    drill.wait_state("paused")


def test_every_prompt_id_answered_200_survives_kill_minus_9_inside_the_burst(make_drill):
    rng = random.Random(17)
    drill = make_drill()
    drill.read_ratio(0.9)
    drill.wait_state("paused")
    accepted, window, _ = burst_with_a_kill(drill, -1, None, None, rng)  # unkilled: when do answers go out?
    assert len(accepted) == BURST and window is not None
    run_restored(drill, accepted.values())
    print(f"calibration: answers between {window[0]:.3f} s and {window[1]:.3f} s after the first post")
    lost_total, inside = 0, 0
    for run in range(RUNS):
        by_time = run % 2 == 0
        kill_at, kill_after = (rng.uniform(0, window[1]), None) if by_time else (None, rng.randint(1, BURST))
        accepted, times, during = burst_with_a_kill(drill, run, kill_at, kill_after, rng)
        inside += during
        if times is not None and len(accepted) == BURST:
            window = times  # a complete burst: the next timed kill aims at its span
        drill.server.kill()
        drill.server.start()
        wait_until(lambda: not drill.journal_status()["restoring"], 60, what="the journal to be restored")
        restored = set(drill.pending_ids())
        lost = sorted(set(accepted.values()) - restored)
        lost_total += len(lost)
        how = f"at {kill_at:.2f} s" if by_time else f"after answer {kill_after}"
        print(f"run {run + 1:2}: killed {how}, {'during the burst' if during else 'just after the last answer'}, "
              f"accepted {len(accepted):2}, restored {len(restored):2}, lost {len(lost)}" + (f" {lost}" if lost else ""))
        run_restored(drill, restored)
        ran = [tag for edge, tag in drill.runs() if edge == "end" and tag.startswith(f"r{run}-")]
        assert not lost, f"run {run + 1}: prompt ids answered 200 and lost in the crash: {lost}"
        for tag in accepted:
            assert ran.count(tag) == 1, f"run {run + 1}: {tag} ran {ran.count(tag)} times"
    assert lost_total == 0
    assert inside >= RUNS // 4, f"only {inside} of {RUNS} kills landed inside the burst: the drill missed its window"
