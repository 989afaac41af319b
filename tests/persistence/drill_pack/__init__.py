"""A small node pack for the journal drills: ComfyUI loads it from a server's custom_nodes folder.

`JournalDrillRun` is an output node that appends "start <tag>" and "end <tag>" to the file named by
JOURNAL_DRILL_LOG, so a drill counts how often each prompt really ran, across restarts. With
`block` it waits while the file JOURNAL_DRILL_BLOCK exists (at most 120 s): a prompt that is running
when the drill kills the server. With JOURNAL_DRILL_WRAP_LOG it also wraps the queue's put and get
as other queue packs do (see _wrap_queue).
"""
import os
import time

BLOCK_LIMIT_S = 120.0


def _note(line):
    with open(os.environ["JOURNAL_DRILL_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


class JournalDrillRun:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "run"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        # payload: ignored; it makes a graph as large as a drill needs (a 200 KB prompt)
        return {"required": {"tag": ("STRING", {"default": ""}), "block": ("BOOLEAN", {"default": False})},
                "optional": {"payload": ("STRING", {"default": ""})}}

    def run(self, tag, block, payload=""):
        _note(f"start {tag}")
        deadline = time.monotonic() + BLOCK_LIMIT_S
        while block and os.path.exists(os.environ["JOURNAL_DRILL_BLOCK"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        _note(f"end {tag}")
        return {}


NODE_CLASS_MAPPINGS = {"JournalDrillRun": JournalDrillRun}


def _wrap_queue(wrap_log):
    """With JOURNAL_DRILL_WRAP_LOG set: another pack's pass-through wrappers on the live queue's put
    and get (the way queue packs wrap it), each call noted in that file."""
    from server import PromptServer

    queue = PromptServer.instance.prompt_queue
    inner_put, inner_get = queue.put, queue.get

    def put(*args, **kwargs):
        with open(wrap_log, "a", encoding="utf-8") as log:
            log.write(f"put {args[0][1]}\n")
        return inner_put(*args, **kwargs)

    def get(*args, **kwargs):
        popped = inner_get(*args, **kwargs)
        if popped is not None:
            with open(wrap_log, "a", encoding="utf-8") as log:
                log.write(f"get {popped[0][1]}\n")
        return popped

    queue.put, queue.get = put, get


if os.environ.get("JOURNAL_DRILL_WRAP_LOG"):
    _wrap_queue(os.environ["JOURNAL_DRILL_WRAP_LOG"])
