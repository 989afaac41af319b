"""The journal of the pending set (gpu_guard.journal) on a real SQLite file."""
import os
import sqlite3

import pytest

from gpu_guard.journal import FILE_NAME, Journal
from gpu_guard.journal_store import SCHEMA_VERSION

SECRET = "sk-MARKER-4f1d2c"


def item(number, prompt_id, sensitive=None, **extra):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"color": number}}}
    return (number, prompt_id, graph, {"client_id": "c1", **extra}, ["1"], sensitive or {})


def opened(path, **kwargs):
    journal = Journal(str(path), **kwargs)
    return journal, journal.open()


def test_pending_set_round_trips_in_priority_order(tmp_path):
    path = tmp_path / FILE_NAME
    journal, loaded = opened(path)
    assert journal.active and loaded.prompts == []
    heap = [item(3, "c"), item(1, "a"), item(-2, "front"), item(2, "b")]
    journal.sync(heap, [])
    journal.sync(heap[1:], [item(3, "c")])  # "c" popped: running
    journal.close()

    again, loaded = opened(path)
    assert [p.prompt_id for p in loaded.prompts] == ["front", "a", "b", "c"]
    assert [p.running for p in loaded.prompts] == [False, False, False, True]
    first = loaded.prompts[1]
    assert first.item == item(1, "a") and first.number == 1 and first.sensitive_keys == ()


def test_removed_prompts_leave_the_journal(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    journal.sync([item(1, "a"), item(2, "b")], [])
    journal.sync([item(2, "b")], [item(1, "a")])
    journal.sync([], [item(1, "a")])  # "b" deleted from the queue
    journal.sync([], [])  # "a" done
    journal.close()
    assert opened(path)[1].prompts == []


def test_sensitive_part_is_never_written(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path, sensitive_keys=("api_key_comfy_org",))
    journal.sync([item(1, "a", sensitive={"api_key_comfy_org": SECRET}),
                  # a release that leaves the key in extra_data: stripped there too
                  item(2, "b", api_key_comfy_org=SECRET)], [])
    journal.close()
    for name in os.listdir(tmp_path):
        assert SECRET.encode() not in (tmp_path / name).read_bytes(), name
    prompts = {p.prompt_id: p for p in opened(path)[1].prompts}
    assert prompts["a"].sensitive_keys == ("api_key_comfy_org",) and prompts["a"].item[5] == {}
    assert prompts["b"].sensitive_keys == ("api_key_comfy_org",) and "api_key_comfy_org" not in prompts["b"].item[3]


def test_loaded_prompts_survive_queue_changes_until_put_back_or_forgotten(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    journal.sync([item(1, "a"), item(2, "b")], [])
    journal.close()
    journal, loaded = opened(path)
    journal.sync([item(9, "new")], [])  # a prompt posted before the restore: "a" and "b" stay
    journal.sync([item(9, "new"), item(1, "a")], [])  # "a" put back
    journal.forget([p.key for p in loaded.prompts])  # "b" failed validation ("a" is back: kept)
    journal.close()
    assert [p.prompt_id for p in opened(path)[1].prompts] == ["a", "new"]


def test_an_item_json_cannot_hold_is_logged_and_skipped(tmp_path, caplog):
    journal, _ = opened(tmp_path / FILE_NAME)
    odd = (1, "odd", {"1": object()}, {}, [], {})
    journal.sync([odd, item(2, "b")], [])
    journal.sync([odd, item(2, "b")], [])
    assert journal.flush(5)
    assert caplog.text.count("prompt odd cannot be journaled") == 1
    journal.close()
    assert [p.prompt_id for p in opened(tmp_path / FILE_NAME)[1].prompts] == ["b"]


@pytest.mark.parametrize("content", [b"this is not a database at all" * 10, None], ids=["garbage", "truncated"])
def test_damaged_file_is_moved_aside_and_a_fresh_journal_started(tmp_path, caplog, content):
    path = tmp_path / FILE_NAME
    if content is None:  # a real journal cut in half
        journal, _ = opened(path)
        journal.sync([item(i, f"p{i}") for i in range(200)], [])
        journal.close()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        content = path.read_bytes()
    else:
        path.write_bytes(content)
    journal, loaded = opened(path)
    assert loaded.prompts == [] and journal.active
    assert journal.moved_aside and open(journal.moved_aside, "rb").read() == content
    assert "was damaged" in caplog.text and journal.moved_aside in caplog.text
    journal.sync([item(1, "a")], [])
    journal.close()
    assert [p.prompt_id for p in opened(path)[1].prompts] == ["a"]


def test_newer_schema_is_moved_aside(tmp_path, caplog):
    path = tmp_path / FILE_NAME
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    journal, loaded = opened(path)
    assert journal.active and journal.moved_aside and os.path.exists(journal.moved_aside)
    assert "newer version of the pack" in caplog.text


def test_unusable_folder_turns_the_journal_off(tmp_path, caplog):
    blocked = tmp_path / "user"
    blocked.write_text("a file where the user directory should be")
    journal, loaded = opened(blocked / FILE_NAME)
    assert not journal.active and loaded.prompts == []
    assert "make its folder writable" in journal.problem and "make its folder writable" in caplog.text
    journal.sync([item(1, "a")], [])  # a no-op, never an error
    assert blocked.read_text() == "a file where the user directory should be"


def test_failed_write_is_logged_and_retried(tmp_path, caplog):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path, retry_s=0.05)
    journal._store._db.execute("PRAGMA busy_timeout=0")  # fail at once instead of waiting 5 s
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file
    journal.sync([item(1, "a")], [])
    assert not journal.flush(0.5) and journal.write_errors >= 1 and journal.unwritten == 1
    assert "writing the journal" in caplog.text and "writing the journal" in journal.problem
    blocker.rollback()
    blocker.close()
    assert journal.flush(5) and journal.problem is None
    journal.close()
    assert [p.prompt_id for p in opened(path)[1].prompts] == ["a"]


def test_changes_are_written_off_the_callers_thread_in_batches(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    heap = []
    for n in range(300):  # a burst of puts: each sync hands one insert over
        heap.append(item(n, f"p{n}"))
        journal.sync(heap, [])
    assert journal.pending_count() == 300
    assert journal.flush(10) and journal.unwritten == 0
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 300
    reader.close()
    journal.sync(heap[1:], [heap[0]])
    journal.sync(heap[1:], [])
    journal.close()
    assert [p.prompt_id for p in opened(path)[1].prompts] == [f"p{n}" for n in range(1, 300)]


def test_a_loaded_running_prompt_stays_running_until_put_back(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    journal.sync([item(2, "b")], [item(1, "a")])
    journal.close()
    journal, loaded = opened(path)
    assert [(p.prompt_id, p.running) for p in loaded.prompts] == [("a", True), ("b", False)]
    journal.sync([item(3, "new")], [])  # before the restore: "a" is still the running one
    journal.close()
    journal, loaded = opened(path)
    assert [(p.prompt_id, p.running) for p in loaded.prompts] == [("a", True), ("b", False), ("new", False)]
    journal.sync([item(1, "a"), item(2, "b"), item(3, "new")], [])  # put back: pending again
    journal.close()
    assert [p.running for p in opened(path)[1].prompts] == [False, False, False]


def _file_state(path):
    reader = sqlite3.connect(path)
    try:
        prompts = {row[0] for row in reader.execute("SELECT prompt_id FROM prompts")}
        running = {row[0] for row in reader.execute("SELECT prompt_id FROM running")}
    finally:
        reader.close()
    return prompts, running


def test_the_file_follows_every_queue_operation_of_a_real_heap(tmp_path):
    """PromptQueue's operations on a heapq (put, front put, pop, task_done, delete, clear), one sync
    after each, as ComfyUI's queue_updated does: single changes take the short path, the others (and
    every 64th) compare the whole set; the file must match the queue throughout."""
    import heapq
    import random

    rng = random.Random(10)
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    heap, running, number = [], {}, 0
    for step in range(1500):
        roll = rng.random()
        if roll < 0.45 or not heap and not running:
            number += 1
            heapq.heappush(heap, item(-number if rng.random() < 0.2 else number, f"p{number}"))
        elif roll < 0.7 and heap and not running:
            popped = heapq.heappop(heap)
            running[popped[1]] = popped
        elif roll < 0.85 and running:
            running.clear()  # task_done
        elif roll < 0.97 and heap:
            heap.pop(rng.randrange(len(heap)))  # delete_queue_item
            heapq.heapify(heap)
        else:
            heap.clear()  # wipe_queue
        journal.sync(heap, running.values())
        if step % 150 == 0:
            assert journal.flush(10)
            assert _file_state(path) == ({i[1] for i in heap} | set(running), set(running)), f"step {step}"
    assert journal.flush(10)
    assert _file_state(path) == ({i[1] for i in heap} | set(running), set(running))
    journal.close()
