"""The OOM rescue's wrappers on a stand-in PromptQueue (the same contract as ComfyUI 0.3.75's): what
task_done and send_sync pass through, put back, or rewrite, including with oom_rescue off."""
from gpu_guard.comfy.oom_hook import EVENT, OomHook
from gpu_guard.learned_peaks import LearnedPeaks
from gpu_guard.oom_rescue import RESCUE_KEY
from tests.gpu_guard.hook_rig import next_prompt

OOM = "torch.OutOfMemoryError"
SENSITIVE = {"api_key_comfy_org": "sk-MARKER"}


class Sent:
    def __init__(self):
        self.messages = []

    def __call__(self, event, data, sid=None):
        self.messages.append((event, data, sid))


def install(rig, **config):
    guard, queue, hook, _probe, _models = rig
    if config:
        guard.update_config(config)
    server = type("Server", (), {})()
    sent = server.send_sync = Sent()  # what reaches ComfyUI's own send_sync
    calls = []
    inner = queue.task_done

    def other_packs_task_done(item_id, history_result, *args, **kwargs):  # another pack's wrapper
        calls.append((item_id, args, kwargs))
        return inner(item_id, history_result, *args, **kwargs)

    queue.task_done = other_packs_task_done
    oom = OomHook(guard, server, queue, hook, LearnedPeaks(None), None, frozenset({OOM}))
    oom.install()
    return guard, queue, sent, calls, oom


def failed_status(queue, prompt_id, exception_type=OOM):
    error = {"prompt_id": prompt_id, "node_id": "1", "node_type": "EmptyImage", "exception_type": exception_type,
             "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB"}
    return queue.ExecutionStatus("error", False, [("execution_start", {"prompt_id": prompt_id}),
                                                  ("execution_error", error)]), error


def put_and_take(queue, client_id="c1"):
    item = (7, "p1", {"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}, {"client_id": client_id},
            ["1"], dict(SENSITIVE))
    queue.put(item)
    return next_prompt(queue)


def strip(item):
    return item[:5] + item[6:]


def test_a_success_passes_through_with_every_argument(rig):
    guard, queue, sent, calls, oom = install(rig)
    (item, item_id) = put_and_take(queue)
    status = queue.ExecutionStatus("success", True, [])
    queue.task_done(item_id, {"outputs": {}}, status=status, process_item=strip)
    assert calls == [(item_id, (), {"status": status, "process_item": strip})]
    assert queue.history["p1"]["status"]["status_str"] == "success"


def test_an_oom_is_put_back_whole_and_the_client_gets_the_rescue_event_instead_of_the_error(rig):
    guard, queue, sent, calls, oom = install(rig)
    (item, item_id) = put_and_take(queue)
    status, error = failed_status(queue, "p1")
    oom.send_sync("execution_error", error, "c1")  # the executor tells the client first
    queue.task_done(item_id, {"outputs": {}}, status=status, process_item=strip)
    assert calls == [] and "p1" not in queue.history and queue.currently_running == {}
    (back,) = queue.queue
    assert back[:3] == item[:3] and back[4:] == item[4:]  # number, id, graph, outputs, sensitive part
    assert back[3]["client_id"] == "c1" and back[3][RESCUE_KEY] == {"attempt": 1, "need_bytes": None,
                                                                    "need_source": "unknown"}
    assert [m[0] for m in sent.messages] == [EVENT] and sent.messages[0][2] == "c1"
    assert guard.metrics.oom_rescues.labels("rescued")._value.get() == 1


def test_with_oom_rescue_off_the_error_is_recorded_in_plain_words(rig):
    guard, queue, sent, calls, oom = install(rig, oom_rescue=False)
    (item, item_id) = put_and_take(queue)
    status, error = failed_status(queue, "p1")
    oom.send_sync("execution_error", error, "c1")
    queue.task_done(item_id, {"outputs": {}}, status=status, process_item=strip)
    recorded = dict(queue.history["p1"]["status"]["messages"])["execution_error"]["exception_message"]
    assert recorded.startswith("This prompt ran out of GPU memory; how much it needs is not known")
    assert "It was not run again (oom_rescue is off)." in recorded and recorded.endswith("Tried to allocate 2.00 GiB")
    assert sent.messages[0][0] == "execution_error" and sent.messages[0][1]["exception_message"] == recorded
    assert calls[0][2]["process_item"] is strip and queue.history["p1"]["prompt"] == strip(item)
    assert guard.metrics.oom_rescues.labels("off")._value.get() == 1


def test_other_errors_are_left_alone(rig):
    guard, queue, sent, calls, oom = install(rig)
    (item, item_id) = put_and_take(queue)
    status, error = failed_status(queue, "p1", exception_type="ValueError")
    oom.send_sync("execution_error", error, "c1")
    queue.task_done(item_id, {"outputs": {}}, status=status, process_item=strip)
    assert sent.messages == [("execution_error", error, "c1")]
    assert queue.history["p1"]["status"] == status._asdict() and calls[0][2]["status"] is status
