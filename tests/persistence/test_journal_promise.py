"""The journal's promise to /prompt (gpu_guard.journal, real SQLite files): a put is encoded at put
time, `when_committed` answers once it is on disk, concurrent puts share one commit, and while writes
fail memory follows the live queue and the journal catches up when the disk works again."""
from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import threading

from gpu_guard.comfy import persistence as persistence_module
from gpu_guard.journal import FILE_NAME, Journal
from tests.harness.coroutines import run_coroutine



def item(number, prompt_id, graph=None, **extra):
    graph = graph or {"1": {"class_type": "EmptyImage", "inputs": {"color": number}}}
    return (number, prompt_id, graph, {"client_id": "c1", **extra}, ["1"], {})


def opened(path, **kwargs):
    journal = Journal(str(path), **kwargs)
    return journal, journal.open()


def rows_on_disk(path):
    reader = sqlite3.connect(path)
    try:
        return {row[0] for row in reader.execute("SELECT prompt_id FROM prompts")}
    finally:
        reader.close()


def waiting_for(journal):
    """What /prompt awaits (QueuePersistence.committed), on this journal alone."""
    persistence = persistence_module.QueuePersistence(guard=None, server=None, queue=None, original_get=None)
    persistence.journal = journal
    return persistence


async def put_and_wait(journal, persistence, heap, numbers):
    """Put each prompt as /prompt does and start its wait for the commit; the waits, in order."""
    waits = []
    for n in numbers:
        heap.append(item(n, f"p{n}"))
        journal.sync(heap, [])
        waits.append(asyncio.ensure_future(persistence.committed()))
        await asyncio.sleep(0)
    return waits


def test_the_journal_keeps_what_was_submitted_and_non_finite_floats_round_trip(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    graph = {"1": {"class_type": "Floats", "inputs": {"nan": float("nan"), "inf": float("inf"),
                                                      "ninf": float("-inf"), "x": 0.5}}}
    submitted = item(1, "a", graph=graph)
    journal.sync([submitted], [])
    # what ComfyUI does while the prompt runs: IS_CHANGED results (NaN among them) and objects that
    # JSON cannot hold are written into the prompt dict
    graph["1"]["is_changed"] = [float("nan")]
    graph["1"]["cache"] = object()
    assert journal.flush(5) and journal.unencodable == 0
    journal.close()

    (restored,) = opened(path)[1].prompts
    inputs = restored.item[2]["1"]["inputs"]
    assert math.isnan(inputs["nan"]) and inputs["inf"] == math.inf and inputs["ninf"] == -math.inf
    assert inputs["x"] == 0.5 and set(restored.item[2]["1"]) == {"class_type", "inputs"}


def test_when_committed_answers_after_the_commit_and_a_burst_shares_one(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    store_write, writes, hold = journal._store.write, [], threading.Event()

    def slow_write(inserts, **changes):  # the first commit takes long: a burst piles up behind it
        writes.append(len(inserts))
        hold.wait(10)
        store_write(inserts, **changes)

    journal._store.write = slow_write
    answers, heap = [], []
    for n in range(50):
        heap.append(item(n, f"p{n}"))
        journal.sync(heap, [])
        seen = f"p{n}"
        journal.when_committed(lambda ok, seen=seen: answers.append((ok, seen in rows_on_disk(path))))
    assert answers == []  # nothing is on disk yet: nobody has been answered
    hold.set()
    assert journal.flush(10)
    deadline = threading.Event()
    deadline.wait(0.2)
    assert answers == [(True, True)] * 50  # each answered True, and its row was on disk by then
    assert len(writes) <= 2 and sum(writes) == 50  # the first put's commit, then one for the other 49
    journal.when_committed(lambda ok: answers.append(("at once", ok)))  # nothing waits: answered now
    assert answers[-1] == ("at once", True)
    journal.close()


def test_while_writes_fail_memory_follows_the_live_queue_and_the_journal_catches_up(tmp_path):
    path = tmp_path / FILE_NAME
    states = []
    journal, _ = opened(path, retry_s=0.05, backlog_limit_bytes=200_000,
                        on_state=lambda kind, details: states.append(kind))
    store_write, disk_full = journal._store.write, threading.Event()
    disk_full.set()

    def write(*args, **kwargs):
        if disk_full.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        store_write(*args, **kwargs)

    journal._store.write = write
    answers = []
    big = {"1": {"class_type": "Note", "inputs": {"text": "x" * 25_000}}}
    heap, running = [], {}
    for n in range(3000):  # 3,000 prompts of 25 KB pass: put, pop, task_done
        heap.append(item(n, f"p{n}", graph=big))
        journal.sync(heap, running.values())
        popped = heap.pop(0)
        running[popped[1]] = popped
        journal.sync(heap, running.values())
        running.clear()
        journal.sync(heap, running.values())
        if n % 500 == 0:
            threading.Event().wait(0.1)  # let the writer retry (and compact) between bursts
    journal.when_committed(lambda ok: answers.append(ok))
    assert answers == [False]  # writes fail: the caller is told at once, not after a timeout
    threading.Event().wait(0.3)
    assert journal.failing and journal.write_errors >= 1 and "disk is full" in journal.problem
    assert journal.unwritten == 0 and journal.backlog_bytes == 0  # everything came and went: nothing kept

    for n in range(3000, 3010):  # ten stay queued: 250 KB waits, over the 200 KB limit
        heap.append(item(n, f"p{n}", graph=big))
        journal.sync(heap, [])
    threading.Event().wait(0.3)
    assert journal.unwritten == 10 and 250_000 < journal.backlog_bytes < 260_000 and journal.over_limit
    assert states == ["journal_failing", "journal_backlog"]

    disk_full.clear()  # space returns
    assert journal.flush(5) and not journal.failing and not journal.over_limit
    assert states == ["journal_failing", "journal_backlog", "journal_recovered"]
    assert rows_on_disk(path) == {f"p{n}" for n in range(3000, 3010)}
    journal.close()


def test_two_queued_prompts_with_the_same_client_chosen_id_are_both_kept(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    twins = [item(1, "mine"), item(2, "mine")]
    journal.sync(twins, [])
    journal.sync(twins[1:], [twins[0]])  # the first one runs
    journal.close()
    loaded = opened(path)[1].prompts
    assert [(p.prompt_id, p.number, p.running) for p in loaded] == [("mine", 1, True), ("mine", 2, False)]


def test_a_schema_1_file_is_migrated_with_its_rows(tmp_path):
    path = tmp_path / FILE_NAME
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE prompts (prompt_id TEXT PRIMARY KEY, number REAL NOT NULL, item TEXT NOT NULL,
                              sensitive_keys TEXT NOT NULL, journaled_at REAL NOT NULL);
        CREATE TABLE running (prompt_id TEXT PRIMARY KEY);
        PRAGMA user_version=1;""")
    for number, prompt_id in ((1, "a"), (2, "b")):
        encoded = json.dumps({"item": list(item(number, prompt_id)[:5]), "had_sensitive": True})
        db.execute("INSERT INTO prompts VALUES (?, ?, ?, '[]', 0)", (prompt_id, number, encoded))
    db.execute("INSERT INTO running VALUES ('a')")
    db.commit()
    db.close()
    journal, loaded = opened(path)
    assert [(p.prompt_id, p.running) for p in loaded.prompts] == [("a", True), ("b", False)]
    journal.close()
    reader = sqlite3.connect(path)
    assert reader.execute("PRAGMA user_version").fetchone()[0] == 2
    reader.close()


def test_the_file_shrinks_back_once_the_journal_is_empty(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    big = {"1": {"class_type": "Note", "inputs": {"text": "x" * 100_000}}}
    heap = [item(n, f"p{n}", graph=big) for n in range(100)]  # 10 MB of prompts
    journal.sync(heap, [])
    assert journal.flush(30)
    files = [path, tmp_path / (FILE_NAME + "-wal")]
    full = sum(f.stat().st_size for f in files if f.exists())
    assert full > 10_000_000
    journal.sync([], [])  # all gone (deleted or done)
    assert journal.flush(30)
    empty = sum(f.stat().st_size for f in files if f.exists())
    assert empty < 200_000 and journal._store.reclaimed == 1, (full, empty)
    journal.close()


def test_commits_are_synchronous_full(tmp_path):
    journal, _ = opened(tmp_path / FILE_NAME)
    assert journal._store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # 2 = FULL
    journal.close()


def test_a_burst_of_posts_waits_with_one_hop_to_the_event_loop_per_commit(tmp_path):
    """QueuePersistence.committed, what /prompt awaits: every waiter is answered after its own
    commit, and the writer crosses to the event loop once per commit, not once per waiter (a hop
    per waiter made the writer and the loop trade the GIL once per prompt of a burst)."""
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    store_write, commits, hold = journal._store.write, [], threading.Event()

    def slow_write(inserts, **changes):  # the first commit takes long: the burst piles up behind it
        hold.wait(10)
        store_write(inserts, **changes)
        commits.append({row[0] for row in inserts})

    journal._store.write = slow_write
    registrations = []
    when_committed = journal.when_committed
    journal.when_committed = lambda callback: (registrations.append(1), when_committed(callback))
    persistence = waiting_for(journal)

    async def burst():
        waits = await put_and_wait(journal, persistence, [], range(60))
        await asyncio.sleep(0.05)
        assert not any(wait.done() for wait in waits)  # nothing is on disk yet: nobody answered
        hold.set()
        return await asyncio.gather(*waits)

    assert run_coroutine(burst()) == [None] * 60
    assert set().union(*commits) == {f"p{n}" for n in range(60)}
    assert len(registrations) <= len(commits) <= 3, (registrations, commits)
    journal.close()


def test_waiters_are_answered_flagged_at_once_while_writes_fail(tmp_path):
    path = tmp_path / FILE_NAME
    journal, _ = opened(path, retry_s=30)

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    journal._store.write = full
    persistence = waiting_for(journal)

    async def posts():
        heap, answers = [], []
        for n in range(5):  # one after the other: each is answered before the next is put
            (wait,) = await put_and_wait(journal, persistence, heap, [n])
            answers.append(await asyncio.wait_for(wait, 3))
        return answers

    answers = run_coroutine(posts())
    assert all(answer is not None and "disk is full" in answer for answer in answers), answers
    assert persistence.answered_unwritten == 5
    journal.close()


def test_a_hanging_disk_answers_the_waiters_flagged_after_the_bound_and_a_gone_client_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(persistence_module, "COMMIT_WAIT_S", 0.3)
    path = tmp_path / FILE_NAME
    journal, _ = opened(path)
    hang = threading.Event()
    store_write = journal._store.write
    journal._store.write = lambda *args, **kwargs: (hang.wait(10), store_write(*args, **kwargs))
    persistence = waiting_for(journal)

    async def posts():
        heap = []
        waits = await put_and_wait(journal, persistence, heap, range(4))
        waits[1].cancel()  # that client went away
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*waits, return_exceptions=True)
        waited = asyncio.get_running_loop().time() - started
        # a post after those expired, while the commit they waited for still hangs: bounded too
        (late,) = await put_and_wait(journal, persistence, heap, [9])
        late = await asyncio.wait_for(late, 3)
        return answers, waited, late

    answers, waited, late = run_coroutine(posts())
    hang.set()
    assert isinstance(answers[1], asyncio.CancelledError)
    assert [a for i, a in enumerate(answers) if i != 1] == ["the journal did not commit within 0.3 s"] * 3
    assert late == "the journal did not commit within 0.3 s"
    assert 0.2 < waited < 2 and persistence.answered_unwritten == 4
    journal.close()
