"""Held and queued prompts survive a ComfyUI crash: real ComfyUI 0.3.75 processes killed with
SIGKILL and started again on the same user directory (issue 10)."""
from __future__ import annotations

import time

import pytest

from tests.gpu_guard.guard_drill import tiny_workflow, wait_until
from tests.persistence.journal_drill import JournalDrill, error_message, files_under

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

SECRET = "sk-journal-MARKER-7c5e91"


def priority_order(posted: dict) -> list:
    """ComfyUI's order: number, then prompt id."""
    return [pid for pid, number in sorted(posted.items(), key=lambda kv: (kv[1], kv[0]))]


def test_held_and_pending_prompts_run_once_in_order_after_a_crash(make_drill, tmp_path):
    wrap_log = tmp_path / "wrapper.log"  # another pack wraps the queue's put and get (drill_pack)
    drill = make_drill(journal_drill_wrap_log=wrap_log)
    drill.read_ratio(0.9)
    drill.wait_state("paused")
    posted = dict(drill.post(f"p{i}") for i in range(20))
    posted.update(drill.post(f"front{i}", front=True) for i in range(5))  # ahead of the 20
    tags = {pid: tag for pid, tag in zip(posted, [f"p{i}" for i in range(20)] + [f"front{i}" for i in range(5)])}
    expected = priority_order(posted)
    assert drill.wait_held(25) == expected

    journal = drill.crash_and_start()  # the probe still reads 0.9
    assert journal["restored"] == 25 and journal["failed_validation"] == 0 and journal["dropped"] == 0

    # restored while paused: held, in the original order, with the original ids; nothing ran
    assert drill.status()["state"] == "paused"
    assert drill.wait_held(25) == expected
    assert drill.pending_ids() == expected
    newer, _ = drill.post("after-restart")  # comes after every restored prompt
    time.sleep(1.0)
    assert drill.runs() == []
    metrics = drill.client.get("/gpu_guard/metrics").text
    assert "gpu_guard_journal_restored_total 25" in metrics

    # the restore went through the queue's put as other packs see it (their wrapper included)
    first_life_puts = wrap_log.read_text().splitlines()[:25]
    assert wrap_log.read_text().splitlines()[25:] == [f"put {pid}" for pid in expected] + [f"put {newer}"]

    drill.read_ratio(0.1)
    history = drill.wait_done(expected + [newer])
    assert all(entry["status"]["status_str"] == "success" for entry in history.values())
    assert sorted(first_life_puts) == sorted(f"put {pid}" for pid in expected)
    assert [line for line in wrap_log.read_text().splitlines() if line.startswith("get ")] == \
        [f"get {pid}" for pid in expected + [newer]]  # the worker takes them through both wrappers
    assert drill.history_order(expected + [newer]) == expected + [newer]
    assert drill.runs() == [(edge, tags[pid]) for pid in expected for edge in ("start", "end")] + \
        [("start", "after-restart"), ("end", "after-restart")]
    assert drill.journal_status()["journaled"] == 0


@pytest.mark.parametrize("policy", ["rerun", "fail"])
def test_the_prompt_running_at_the_crash(make_drill, policy):
    drill = make_drill(gpu_guard_persist_running=policy)
    drill.block_file.write_text("block")
    running, _ = drill.post("running", block=True)
    wait_until(lambda: ("start", "running") in drill.runs(), 60, what="the blocking prompt to start")
    drill.read_ratio(0.9)
    drill.wait_state("paused")
    tags = {}
    for i in range(3):
        prompt_id, number = drill.post(f"p{i}")
        tags[prompt_id] = (number, f"p{i}")
    expected = priority_order({pid: number for pid, (number, _tag) in tags.items()})
    drill.wait_held(3)

    journal = drill.crash_and_start()
    drill.block_file.unlink()
    if policy == "rerun":
        assert (journal["restored"], journal["failed_running"]) == (4, 0)
        assert drill.wait_held(4) == [running] + expected  # at-least-once: it runs again, first
    else:
        assert (journal["restored"], journal["failed_running"]) == (3, 1)
        entry = drill.wait_done([running])[running]
        assert entry["status"]["status_str"] == "error"
        message = error_message(entry)
        assert "running when ComfyUI stopped" in message and "journal" in message
        assert drill.wait_held(3) == expected

    drill.read_ratio(0.1)
    history = drill.wait_done([running] + expected)
    others = [(edge, tags[pid][1]) for pid in expected for edge in ("start", "end")]
    if policy == "rerun":
        assert drill.history_order([running] + expected) == [running] + expected
        assert history[running]["status"]["status_str"] == "success"
        assert drill.runs() == [("start", "running"), ("start", "running"), ("end", "running")] + others
    else:
        assert drill.runs() == [("start", "running")] + others  # never run again


def test_a_prompt_whose_node_is_gone_ends_in_history_naming_the_node(make_drill):
    drill = make_drill()
    drill.read_ratio(0.9)
    drill.wait_state("paused")
    gone, _ = drill.post("needs-the-pack")
    kept = drill.client.post_prompt(tiny_workflow(77))
    drill.wait_held(2)

    journal = drill.crash_and_start(remove_pack=True)
    assert (journal["restored"], journal["failed_validation"]) == (1, 1)
    entry = drill.wait_done([gone])[gone]
    assert entry["status"]["status_str"] == "error"
    message = error_message(entry)
    assert "JournalDrillRun does not exist" in message and "journal" in message
    assert drill.wait_held(1) == [kept]
    drill.read_ratio(0.1)
    assert drill.wait_done([kept])[kept]["status"]["status_str"] == "success"


def test_sensitive_data_never_reaches_the_journal(make_drill):
    drill = make_drill()
    drill.read_ratio(0.9)
    drill.wait_state("paused")
    secret_prompt, _ = drill.post("secret", extra_data={"api_key_comfy_org": SECRET})
    drill.wait_held(1)
    drill.wait_written()
    journal_files = [path for path in files_under(drill.server.folders.user) if "journal" in path.name]
    assert any(secret_prompt.encode() in path.read_bytes() for path in journal_files)  # the prompt is there
    for path in files_under(drill.server.folders.base):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the secret is in {path}"

    drill.crash_and_start()
    (item,) = drill.client.queue()["queue_pending"]
    assert item[1] == secret_prompt
    assert item[3]["gpu_guard_restored"]["sensitive_keys_dropped"] == ["api_key_comfy_org"]
    assert drill.journal_status()["without_sensitive"] == 1
    for path in files_under(drill.server.folders.base):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the secret is in {path}"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_journal_is_moved_aside_and_comfyui_starts(comfy_factory, damage):
    from gpu_guard.journal import Journal

    server = comfy_factory(checkpoint=False, start=False)
    drill = JournalDrill(server)
    drill.journal_path.parent.mkdir(parents=True, exist_ok=True)
    if damage == "garbage":
        drill.journal_path.write_bytes(b"\x00garbage, not SQLite\n" * 50)
    else:
        journal = Journal(str(drill.journal_path))
        journal.open()
        journal.sync([(i, f"p{i}", tiny_workflow(i), {}, ["2"], {}) for i in range(200)], [])
        journal.close()
        data = drill.journal_path.read_bytes()
        drill.journal_path.write_bytes(data[: len(data) // 2])
    damaged = drill.journal_path.read_bytes()

    server.start()
    status = drill.journal_status()
    assert status["active"] and status["moved_aside"]
    moved = status["moved_aside"]
    assert open(moved, "rb").read() == damaged
    assert "was damaged" in status["problem"] and moved in server.log_text()
    server.wait_for_log("VRAM guard journal: the journal")
    prompt_id = server.post_prompt(tiny_workflow(5))  # ComfyUI works, and journals again
    assert server.wait_history(prompt_id)["status"]["status_str"] == "success"
