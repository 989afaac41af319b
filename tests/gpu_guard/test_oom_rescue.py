"""A prompt that runs out of GPU memory waits and runs again instead of failing: real ComfyUI 0.3.75
on the CPU, the OOM drill pack's node raising torch's OutOfMemoryError, the file probe or the
simulated GPU (issue 19)."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.gpu_guard.guard_drill import wait_until
from tests.harness.probe_file import ProbeFile
from tests.persistence.journal_drill import JournalDrill, error_message

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

OOM_PACK = Path(__file__).resolve().parent / "oom_drill_pack"
GB = 1_000_000_000


def oom_workflow(tag: str, fail_runs: int = 0, extra_bytes: int = 0, estimate_bytes: int = 0) -> dict:
    return {"1": {"class_type": "OomDrillRun", "inputs": {"tag": tag, "fail_runs": fail_runs,
                                                           "extra_bytes": extra_bytes,
                                                           "estimate_bytes": estimate_bytes}}}


class OomDrill(JournalDrill):
    """The journal drill (run log, crash and restart) plus the OOM drill pack."""

    def __init__(self, server, sim: ProbeFile | None = None):
        super().__init__(server)
        if sim is not None:
            self.probe = sim
        (server.folders.custom_nodes / "oom_drill_nodes").symlink_to(OOM_PACK, target_is_directory=True)

    def post_oom(self, tag: str, client_id: str | None = None, **inputs) -> str:
        response = self.client.post_prompt_raw(oom_workflow(tag, **inputs), client_id=client_id)
        assert response.status_code == 200, response.text
        return response.json()["prompt_id"]

    def rescue_status(self) -> dict:
        return self.status()["adapter"]["oom_rescue"]

    def wait_waiting(self, prompt_id: str, timeout: float = 30.0) -> dict:
        return wait_until(lambda: (lambda w: w if w and w["prompt_id"] == prompt_id else None)(
            self.rescue_status()["waiting"]), timeout, interval=0.05, what=f"rescued prompt {prompt_id} held")

    def metric(self, outcome: str) -> float:
        for line in self.client.get("/gpu_guard/metrics").text.splitlines():
            if line.startswith(f'gpu_guard_oom_rescues_total{{outcome="{outcome}"}}'):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no gpu_guard_oom_rescues_total for {outcome}")


@pytest.fixture
def make_drill(comfy_factory, tmp_path):
    def make(sim: bool = False, **env):
        env = {k.upper(): str(v) for k, v in env.items()}
        sim_file = None
        if sim:
            sim_file = ProbeFile(tmp_path / "sim.json")
            sim_file.write_sim(10 * GB, 1 * GB)
            env["GPU_GUARD_PROBE"] = sim_file.sim_spec
        server = comfy_factory(env=env, checkpoint=False, start=False)
        drill = OomDrill(server, sim_file)
        server.start()
        return drill

    return make


def test_a_prompt_that_runs_out_of_memory_once_is_held_and_runs_again(make_drill):
    drill = make_drill()  # file probe: 1 GB of 10 GB used
    client_id = uuid.uuid4().hex
    with drill.client.events(client_id) as events:
        # 9.5 GB estimated: more than is free (9 GB), so the rescued prompt waits until the reading drops
        once = drill.post_oom("once", client_id=client_id, fail_runs=1, estimate_bytes=int(9.5 * GB))
        behind = drill.post_oom("behind", client_id=client_id)
        rescue = events.wait_for("gpu_guard.oom_rescue", lambda d: d["prompt_id"] == once, timeout=60).data
        assert rescue["attempt"] == 1 and rescue["max_attempts"] == 2
        assert rescue["waits_for_bytes"] == int(9.5 * GB) and rescue["need_source"] == "estimated"
        assert rescue["message"] == "ran out of GPU memory; held and will run again when 9.5 GB is free"
        waiting = drill.wait_waiting(once)
        assert waiting["need_bytes"] == int(9.5 * GB) and waiting["attempt"] == 1
        time.sleep(1.0)  # held, and the prompt behind it waits with it
        assert drill.pending_ids() == [once, behind]
        assert drill.client.history(once) is None and drill.runs() == [("start", "once")]

        drill.probe.write_ratio(0.02)  # 9.8 GB free now
        history = drill.wait_done([once, behind], timeout=60)
        assert history[once]["status"]["status_str"] == "success"
        assert history[behind]["status"]["status_str"] == "success"
        # ComfyUI's error never reached the client: the rescue event stood in for it
        assert not [e for e in events.of_type("execution_error") if e.data.get("prompt_id") == once]
    assert drill.runs() == [("start", "once"), ("start", "once"), ("end", "once"), ("start", "behind"),
                            ("end", "behind")]
    assert drill.history_order([once, behind]) == [once, behind]
    rescue = drill.rescue_status()
    assert rescue["counts"]["rescued"] == 1 and rescue["counts"]["recovered"] == 1 and rescue["waiting"] is None
    assert drill.metric("rescued") == 1 and drill.metric("recovered") == 1 and drill.metric("exhausted") == 0
    kinds = [e for e in drill.client.get_json("/gpu_guard/events", params={"kind": "oom_rescue"})["events"]]
    assert [e["outcome"] for e in kinds] == ["rescued", "recovered"]


def test_a_prompt_that_always_runs_out_of_memory_ends_with_plain_words_and_the_queue_goes_on(make_drill):
    drill = make_drill()
    always = drill.post_oom("always", fail_runs=-1, estimate_bytes=2 * GB)
    behind = drill.post_oom("behind")
    history = drill.wait_done([always, behind], timeout=90)
    assert history[always]["status"]["status_str"] == "error"
    message = error_message(history[always])
    assert message.startswith("This prompt ran out of GPU memory: it needs about 2.0 GB (estimated by its "
                              "nodes), and the GPU had 9.0 GB free of 10.0 GB. It ran 3 times, held each time "
                              "until the memory seemed free, and still did not fit. To make it fit: use a "
                              "smaller size, the tiny model, or fp16/bf16 precision; lower max_held so fewer "
                              "prompts wait on this GPU; or send it to another server."), message
    assert "OOM drill" in message  # torch's own message follows the plain words
    assert history[behind]["status"]["status_str"] == "success"
    assert drill.runs() == [("start", "always")] * 3 + [("start", "behind"), ("end", "behind")]
    assert drill.metric("rescued") == 2 and drill.metric("exhausted") == 1


def test_a_rescued_prompt_held_at_a_crash_runs_once_after_the_restart(make_drill):
    drill = make_drill()
    held = drill.post_oom("crash", fail_runs=1, estimate_bytes=int(9.5 * GB))
    drill.wait_waiting(held)
    journal = drill.crash_and_start()
    assert journal["restored"] == 1
    waiting = drill.wait_waiting(held)  # held again: its rescue came back with it
    assert waiting["attempt"] == 1 and waiting["need_bytes"] == int(9.5 * GB)
    assert drill.pending_ids() == [held]
    drill.probe.write_ratio(0.02)
    history = drill.wait_done([held], timeout=60)
    assert history[held]["status"]["status_str"] == "success"
    assert drill.runs() == [("start", "crash"), ("start", "crash"), ("end", "crash")]


def test_on_the_simulated_gpu_the_learned_peak_gates_the_rescued_prompt(make_drill):
    drill = make_drill(sim=True)
    drill.probe.write_sim(10 * GB, 6 * GB)  # 4 GB free; the node needs its 1 GB estimate plus 6 GB more
    big = drill.post_oom("big", extra_bytes=6 * GB, estimate_bytes=1 * GB)
    waiting = drill.wait_waiting(big)
    # learned from the failed run: its 1 GB working set plus the 6 GB it tried to allocate, not the 1 GB estimate
    assert waiting["need_bytes"] == 7 * GB and waiting["need_source"] == "learned"
    time.sleep(1.5)
    assert drill.pending_ids() == [big] and drill.runs() == [("start", "big")]

    drill.probe.write_sim(10 * GB, 2 * GB)  # the foreign load drops: 8 GB free
    history = drill.wait_done([big], timeout=60)
    assert history[big]["status"]["status_str"] == "success"
    assert drill.runs() == [("start", "big"), ("start", "big"), ("end", "big")]
    assert drill.rescue_status()["learned_peaks"] == 1


def test_on_the_simulated_gpu_the_fast_lane_uses_the_learned_peak(make_drill):
    drill = make_drill(sim=True, gpu_guard_pause_at=0.95, gpu_guard_resume_at=0.5, gpu_guard_fast_lane_margin=0)
    first = drill.post_oom("learn", extra_bytes=6 * GB, estimate_bytes=1 * GB)  # runs: peak 7 GB learned
    drill.wait_done([first], timeout=60)
    assert drill.rescue_status()["learned_peaks"] == 1
    # ComfyUI empties torch's cache a few seconds after a prompt (its gc interval): until then the 7 GB
    # the prompt left reserved are reclaimable, and no foreign load could pause the guard
    drill.client.free(unload_models=True, free_memory=True)  # sooner than the gc interval
    wait_until(lambda: (lambda r: r["running_prompt_bytes"] == 0 and r["reclaimable"]["torch_cache_bytes"] == 0)(
        drill.status()["reading"]), 30, what="ComfyUI to empty its cache")

    drill.probe.write_sim(10 * GB, int(9.6 * GB))
    drill.wait_state("paused")
    drill.probe.write_sim(10 * GB, 6 * GB)  # still paused (resume below 0.5); 4 GB free
    again = drill.post_oom("learn", extra_bytes=6 * GB, estimate_bytes=1 * GB)  # same workflow: 7 GB learned
    other = drill.post_oom("unknown-to-the-table", estimate_bytes=1 * GB)  # only its estimate: fits
    drill.wait_done([other], timeout=60)  # the fast lane is open for what fits
    held = wait_until(lambda: [h for h in drill.status()["held"]
                               if h["prompt_id"] == again and h["need_source"] != "pending"], 10,
                      what="the learned prompt held and estimated")[0]
    assert held["learned_bytes"] == 7 * GB and held["need_source"] == "learned"
    time.sleep(1.0)
    assert drill.client.history(again) is None  # by its 1 GB estimate it would have run in the fast lane
    drill.probe.write_sim(10 * GB, 1 * GB)
    assert drill.wait_done([again], timeout=60)[again]["status"]["status_str"] == "success"
