"""A stand-in for ComfyUI's execution.PromptQueue with the same locking and heap contract (0.3.75),
for tests that must provoke races and faults a live server cannot be made to show on demand."""
import heapq
import threading
from collections import namedtuple


class StandInServer:
    def __init__(self):
        self.updates = 0

    def queue_updated(self):
        self.updates += 1


class StandInPromptQueue:
    """What the hook relies on: mutex/not_empty, a heap of tuples, get/task_done/set_flag."""

    ExecutionStatus = namedtuple("ExecutionStatus", ["status_str", "completed", "messages"])

    def __init__(self):
        self.server = StandInServer()
        self.mutex = threading.RLock()
        self.not_empty = threading.Condition(self.mutex)
        self.queue, self.currently_running, self.history, self.flags = [], {}, {}, {}
        self.task_counter = 0

    def put(self, item):
        with self.mutex:
            heapq.heappush(self.queue, item)
            self.server.queue_updated()
            self.not_empty.notify()

    def get(self, timeout=None):
        with self.not_empty:
            while not self.queue:
                self.not_empty.wait(timeout=timeout)
                if timeout is not None and not self.queue:
                    return None
            item = heapq.heappop(self.queue)
            number = self.task_counter
            self.currently_running[number] = item
            self.task_counter += 1
            self.server.queue_updated()
            return item, number

    def task_done(self, item_id, history_result, status, process_item=None):
        with self.mutex:
            item = self.currently_running.pop(item_id)
            if process_item is not None:
                item = process_item(item)
            self.history[item[1]] = {"prompt": item, "status": status._asdict(), **history_result}
            self.server.queue_updated()

    def set_flag(self, name, value):
        with self.mutex:
            self.flags[name] = value
            self.not_empty.notify()
