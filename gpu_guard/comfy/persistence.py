"""Held and queued prompts survive a restart: the journal (gpu_guard.journal) fed from the queue
hook, and the restore at start.

- Feeding: the hook tells us of every change of the pending set (ComfyUI's queue_updated, under the
  queue's mutex); the journal is handed the heap and `currently_running` and writes the difference.
- Restore: the journal is read when the pack is imported, and ComfyUI's prompt counter is moved
  past the journaled numbers then, before the HTTP server takes a prompt, so that new prompts come
  after the restored ones. The restore itself needs every node pack imported (validation looks the
  nodes up), so it starts at the worker's first `get` (ComfyUI starts the worker after importing the
  packs) and runs on ComfyUI's event loop (`execution.validate_prompt` is a coroutine there); the
  worker waits for it, with a bound. Each prompt is validated again and put back through ComfyUI's
  own `put` with its id, number and extra data (so the guard holds it when paused); one that fails
  validation, or the running one under persist_running=fail, ends in /history as an error.
- The promise of `/prompt`: `committed()` is awaited by the admission middleware before a 200 goes
  out, so a prompt id returned by /prompt survives kill -9 (concurrent posts share one commit).
"""
from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import math
import threading
from typing import Optional

from ..journal import FILE_NAME, Journal
from . import queue_ops
from .user_dir import claim_note, user_file

_log = logging.getLogger("gpu_guard.comfy")

JOURNAL_EXCEPTION = "gpu_guard.JournalRestore"
# extra_data key that marks a restored prompt (seen in /queue and /history with the prompt)
RESTORED_KEY = "gpu_guard_restored"
# How long the worker's first get waits for the restore before it takes prompts anyway
RESTORE_WAIT_S = 120.0
# At a normal exit, how long the journal may take to commit the changes that wait
CLOSE_WAIT_S = 2.0
# /prompt waits at most this long for its commit, then answers anyway (flagged): a disk that hangs
# must not hang every client; a healthy commit takes milliseconds
COMMIT_WAIT_S = 5.0
# The header a 200 from /prompt carries when its prompt could not be journaled in time
UNWRITTEN_HEADER = "X-GPU-Guard-Journal"
# ComfyUI's keys of the sensitive part (execution.SENSITIVE_EXTRA_DATA_KEYS in 0.3.75)
FALLBACK_SENSITIVE_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


def comfy_validate_prompt():
    import execution  # ComfyUI's top-level module

    return execution.validate_prompt


def comfy_sensitive_keys():
    try:
        import execution

        return tuple(execution.SENSITIVE_EXTRA_DATA_KEYS)
    except (ImportError, AttributeError):
        return FALLBACK_SENSITIVE_KEYS


def journal_path(guard):
    """Next to gpu_guard.json in ComfyUI's user directory, named for this process when another one
    shares the directory (gpu_guard.dir_owner); None when unknown or not ours to use."""
    return user_file(guard, FILE_NAME)


class QueuePersistence:
    def __init__(self, guard, server, queue, original_get, on_failed=None, validate=comfy_validate_prompt,
                 sensitive_keys=comfy_sensitive_keys):
        self.guard = guard
        self.server = server
        self.queue = queue
        self.original_get = original_get
        self.on_failed = on_failed
        self._validate_source = validate
        self._sensitive_keys = sensitive_keys
        self.journal = None
        self.note = None  # why there is no journal
        self._to_restore = []
        self._dropped = []
        self._restored = threading.Event()
        self._restored.set()  # nothing to wait for until open() found prompts
        self.counts = {"restored": 0, "failed_validation": 0, "failed_running": 0, "dropped": 0,
                       "without_sensitive": 0}
        # /prompt answers waiting for their commit, in order of arrival: (sequence, deadline, future); on the loop
        self._commit_waiters = []
        self._commit_armed = False  # a journal callback for them is outstanding
        self._commit_timer = None  # the deadline of the oldest
        self.answered_unwritten = 0  # 200s from /prompt given before their commit (writes failing, timeout)
        self.on_event = None  # the operations layer's intake: journal_failing / journal_recovered / journal_backlog

    # -- start ------------------------------------------------------------------------------------

    def open(self, hook) -> None:
        """Read the journal, move ComfyUI's prompt counter past it and wire the hook."""
        if not self.guard.config.persist:
            self.note = "persist is off: prompts are not journaled and none are restored"
            _log.info("VRAM guard: %s", self.note)
            return
        path = journal_path(self.guard)
        if path is None:
            self.note = claim_note(self.guard) or "ComfyUI's user directory is unknown: prompts are not journaled"
            _log.warning("VRAM guard: %s", self.note)
            return
        self.note = claim_note(self.guard)  # another ComfyUI shares the directory: own names (said loudly)
        self.journal = Journal(path, self._sensitive_keys(), on_state=self._journal_state)
        loaded = self.journal.open()
        atexit.register(self.journal.close, CLOSE_WAIT_S)  # a normal stop writes what waits
        self._to_restore, self._dropped = loaded.prompts, loaded.dropped
        self._advance_prompt_counter()
        if self._to_restore or self._dropped:
            self._restored.clear()
            hook.before_get = self.wait_restored
            _log.info("VRAM guard: %d prompt(s) in the journal %s; restoring them before the first prompt runs",
                      len(self._to_restore), path)
        hook.on_queue_change = self.on_queue_change

    def _advance_prompt_counter(self):
        numbers = [p.number for p in self._to_restore if isinstance(p.number, (int, float))]
        if numbers and hasattr(self.server, "number") and max(numbers) >= self.server.number:
            self.server.number = int(math.floor(max(numbers))) + 1

    # -- feeding ----------------------------------------------------------------------------------

    def on_queue_change(self, queue) -> None:
        """Under the queue's mutex, at every put, pop, delete, clear and task_done."""
        journal = self.journal
        if journal is not None:
            journal.sync(queue.queue, queue.currently_running.values())

    def _journal_state(self, kind, details) -> None:
        """On the journal's writer thread: hand its state changes to the operations layer."""
        if self.on_event is not None:
            self.on_event({"kind": kind, "reading": None, "reason": (self.journal.problem if self.journal else None)
                           or kind.replace("_", " "), **details})

    # -- the promise of /prompt -------------------------------------------------------------------

    async def committed(self) -> Optional[str]:
        """Await the commit of every change handed to the journal so far (the caller's put among
        them). None when committed (or when there is no journal: nothing was promised); else why not
        (writes fail, or COMMIT_WAIT_S passed): the caller answers anyway, flagged."""
        journal = self.journal
        if journal is None or not journal.active:
            return None
        handed, committed = journal.sequence()
        if handed <= committed:
            return None
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._commit_waiters.append((handed, loop.time() + COMMIT_WAIT_S, future))
        self._arm_commit_wait(loop)
        if await future:
            return None
        self.answered_unwritten += 1
        return journal.problem or f"the journal did not commit within {COMMIT_WAIT_S:g} s"

    # Every waiter of a burst shares one journal callback and one timer, both on the event loop: a
    # callback (or a wait_for) per waiter made the writer and the loop trade the GIL, and the loop
    # run a timer, once per prompt of the burst.

    def _arm_commit_wait(self, loop) -> None:
        if not self._commit_waiters:
            return
        if self._commit_timer is None:  # also while a callback is out: the disk may hang behind it
            self._commit_timer = loop.call_at(self._commit_waiters[0][1], self._expire_commit_waiters, loop)
        if self._commit_armed:
            return
        self._commit_armed = True
        self.journal.when_committed(lambda ok: loop.call_soon_threadsafe(self._settle_commit_waiters, loop, ok))

    def _settle_commit_waiters(self, loop, ok: bool) -> None:
        self._commit_armed = False
        _handed, committed = self.journal.sequence()
        waiting = []
        for entry in self._commit_waiters:
            sequence, _deadline, future = entry
            if future.done():
                continue  # its client went away (the handler was cancelled)
            if not ok or sequence <= committed:
                future.set_result(ok)
            else:
                waiting.append(entry)
        self._commit_waiters = waiting
        if not waiting and self._commit_timer is not None:
            self._commit_timer.cancel()
            self._commit_timer = None
        self._arm_commit_wait(loop)

    def _expire_commit_waiters(self, loop) -> None:
        """COMMIT_WAIT_S passed for the oldest waiters (the disk hangs): they are answered, flagged."""
        now = loop.time()
        waiting = self._commit_waiters
        while waiting and waiting[0][1] <= now:  # in order of arrival, so of deadline
            future = waiting.pop(0)[2]
            if not future.done():
                future.set_result(False)
        self._commit_timer = loop.call_at(waiting[0][1], self._expire_commit_waiters, loop) if waiting else None

    # -- restore ----------------------------------------------------------------------------------

    def wait_restored(self) -> None:
        """The worker's first get: start the restore on ComfyUI's loop and wait for it (bounded)."""
        try:
            loop = getattr(self.server, "loop", None)
            if loop is not None and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(self.restore(), loop)
            else:
                asyncio.run(self.restore())
        except Exception:  # noqa: BLE001 - the worker must go on
            _log.exception("VRAM guard: could not start restoring the journal")
            self._restored.set()
        if not self._restored.wait(RESTORE_WAIT_S):
            _log.error("VRAM guard: restoring the journal took over %.0f s; the worker takes prompts now, "
                       "restored prompts may come after newer ones", RESTORE_WAIT_S)

    async def restore(self) -> None:
        try:
            validate = self._validate_source()
            policy = self.guard.config.persist_running
            for prompt in self._to_restore:
                try:
                    await self._restore_one(prompt, validate, policy)
                except Exception as error:  # noqa: BLE001 - one prompt must not stop the rest
                    self._drop(prompt.prompt_id, f"it could not be put back ({type(error).__name__}: {error})")
                    _log.exception("VRAM guard: restoring prompt %s failed", prompt.prompt_id)
            for (_number, prompt_id), reason in self._dropped:
                self._drop(prompt_id, reason)
            self.journal.forget([p.key for p in self._to_restore] + [key for key, _ in self._dropped])
            _log.info("VRAM guard: journal restored: %s", ", ".join(f"{k} {v}" for k, v in self.counts.items()))
        except Exception:  # noqa: BLE001 - ComfyUI must start whatever the journal holds
            _log.exception("VRAM guard: restoring the journal failed")
        finally:
            self._to_restore, self._dropped = [], []  # nothing a prompt carries is kept
            self._restored.set()

    def _drop(self, prompt_id, reason):
        self.counts["dropped"] += 1
        _log.error("VRAM guard: journaled prompt %s is dropped: %s", prompt_id, reason)

    async def _restore_one(self, prompt, validate, policy) -> None:
        item = prompt.item
        if prompt.running and policy == "fail":
            self.counts["failed_running"] += 1
            self._end_in_history(item, "This prompt was running when ComfyUI stopped. The VRAM guard's journal "
                                       "records it as failed by the restart instead of running it again "
                                       "(persist_running=fail).")
            return
        try:
            valid = await _validated(validate, item)
        except Exception as error:  # noqa: BLE001 - a validator bug ends the prompt, visibly
            _log.exception("VRAM guard: validating journaled prompt %s raised", prompt.prompt_id)
            valid = (False, {"message": "validation raised", "details": f"{type(error).__name__}: {error}"}, [], {})
        if not valid[0]:
            self.counts["failed_validation"] += 1
            self._end_in_history(item, "This prompt was restored from the VRAM guard's journal after ComfyUI "
                                       "restarted and failed ComfyUI's validation: " + _validation_text(valid))
            return
        extra_data = dict(item[3]) if isinstance(item[3], dict) else {}
        marker = {"from": "journal", "was_running": prompt.running}
        if prompt.sensitive_keys:
            marker["sensitive_keys_dropped"] = list(prompt.sensitive_keys)
            self.counts["without_sensitive"] += 1
            _log.warning("VRAM guard: prompt %s is restored without its sensitive data (%s): it was never "
                         "journaled; nodes that need it will fail", prompt.prompt_id, ", ".join(prompt.sensitive_keys))
        extra_data[RESTORED_KEY] = marker
        restored = (item[0], item[1], item[2], extra_data, valid[2]) + tuple(item[5:])
        self.queue.put(restored)
        self.counts["restored"] += 1

    def _end_in_history(self, item, message) -> None:
        messages = queue_ops.failure_messages(item, message, JOURNAL_EXCEPTION)
        with self.queue.mutex:
            self.queue.put(item)
            popped = queue_ops.pop_item(self.queue, item, self.original_get)
            queue_ops.record_failure(self.queue, popped, messages)
        _log.warning("VRAM guard: journaled prompt %s ended as an error: %s", item[1], message)
        if self.on_failed is not None:
            try:
                self.on_failed(item, messages)
            except Exception:  # noqa: BLE001 - a notification must not stop the restore
                _log.exception("VRAM guard: could not notify the client of prompt %s", item[1])

    # -- reporting --------------------------------------------------------------------------------

    def status(self) -> dict:
        journal = self.journal
        return {
            "persist": self.guard.config.persist,
            "active": bool(journal and journal.active),
            "path": journal.path if journal else None,
            "note": self.note,
            "problem": journal.problem if journal else None,
            "moved_aside": journal.moved_aside if journal else None,
            "restoring": not self._restored.is_set(),
            "journaled": journal.pending_count() if journal and journal.active else 0,
            "unwritten": journal.unwritten if journal and journal.active else 0,  # changes not yet committed
            "unwritten_bytes": journal.backlog_bytes if journal else 0,
            "over_limit": bool(journal and journal.over_limit),
            "write_errors": journal.write_errors if journal else 0,
            "unencodable": journal.unencodable if journal else 0,
            "answered_unwritten": self.answered_unwritten,
            **self.counts,
        }

    def metrics_text(self) -> bytes:
        status = self.status()
        lines = [
            ("gpu_guard_journal_active", "gauge", "1 while the pending prompts are journaled", int(status["active"])),
            ("gpu_guard_journal_prompts", "gauge", "Prompts in the journal (queued, held and running)",
             status["journaled"]),
            ("gpu_guard_journal_restored_total", "counter", "Journaled prompts put back at start",
             status["restored"]),
            ("gpu_guard_journal_failed_validation_total", "counter",
             "Journaled prompts that failed ComfyUI's validation at start (ended in /history)",
             status["failed_validation"]),
            ("gpu_guard_journal_failed_running_total", "counter",
             "Prompts running at the stop, recorded as failed by the restart (persist_running=fail)",
             status["failed_running"]),
            ("gpu_guard_journal_dropped_total", "counter", "Journaled prompts that could not be read or put back",
             status["dropped"]),
            ("gpu_guard_journal_write_errors_total", "counter", "Failed journal writes", status["write_errors"]),
            ("gpu_guard_journal_unwritten_bytes", "gauge",
             "Encoded prompts waiting for a failing journal (compacted to the prompts queued now)",
             status["unwritten_bytes"]),
            ("gpu_guard_journal_over_limit", "gauge", "1 while the unwritten prompts exceed the journal's backlog limit",
             int(status["over_limit"])),
            ("gpu_guard_journal_answered_unwritten_total", "counter",
             "200s from /prompt given before the prompt was journaled (writes failing or too slow)",
             status["answered_unwritten"]),
        ]
        return "".join(f"# HELP {name} {text}\n# TYPE {name} {kind}\n{name} {value}\n"
                       for name, kind, text, value in lines).encode()


async def _validated(validate, item):
    """ComfyUI's validation of the journaled prompt, limited to the outputs it was queued with."""
    outputs = list(item[4]) if isinstance(item[4], (list, tuple)) else None
    if len(inspect.signature(validate).parameters) >= 3:
        result = validate(item[1], item[2], outputs)
    else:  # older releases: validate_prompt(prompt)
        result = validate(item[2])
    return await result if inspect.isawaitable(result) else result


def _validation_text(valid) -> str:
    error = valid[1] if isinstance(valid[1], dict) else {"message": str(valid[1])}
    parts = [": ".join(p for p in (error.get("message"), error.get("details")) if p)]
    for node_id, node in (valid[3] or {}).items():
        for reason in node.get("errors", []):
            parts.append(f"{node.get('class_type')} #{node_id}: {reason.get('message')}: {reason.get('details')}")
    return "; ".join(p for p in parts if p)
