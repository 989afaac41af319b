"""A real ComfyUI with the journal drill pack, killed with SIGKILL and started again on the same
user directory."""
from __future__ import annotations

import os
from pathlib import Path

from tests.gpu_guard.guard_drill import GuardDrill, wait_until

DRILL_PACK = Path(__file__).resolve().parent / "drill_pack"
DRILL_PACK_NAME = "journal_drill_nodes"
JOURNAL_NAME = "gpu_guard_journal.sqlite3"


def drill_workflow(tag: str, block: bool = False, payload_bytes: int = 0) -> dict:
    inputs = {"tag": tag, "block": block}
    if payload_bytes:
        inputs["payload"] = "x" * payload_bytes
    return {"1": {"class_type": "JournalDrillRun", "inputs": inputs}}


class JournalDrill(GuardDrill):
    """GuardDrill plus the drill pack's run log, the block file and crash-restart."""

    def __init__(self, server):
        super().__init__(server, server.probe)
        self.server = server
        base = server.folders.base
        self.run_log = base / "drill-runs.log"
        self.block_file = base / "drill-block"
        server.env.update({"JOURNAL_DRILL_LOG": str(self.run_log), "JOURNAL_DRILL_BLOCK": str(self.block_file),
                           "GPU_GUARD_POLL_S": "0.05"})
        server.folders.custom_nodes.mkdir(parents=True, exist_ok=True)
        self.pack_link = server.folders.custom_nodes / DRILL_PACK_NAME
        self.pack_link.symlink_to(DRILL_PACK, target_is_directory=True)

    @property
    def journal_path(self) -> Path:
        return self.server.folders.user / JOURNAL_NAME

    def post(self, tag: str, block: bool = False, **fields) -> tuple:
        """Queue a drill prompt; (prompt id, number) as ComfyUI answered."""
        response = self.client.post_prompt_raw(drill_workflow(tag, block), **fields)
        assert response.status_code == 200, response.text
        body = response.json()
        return body["prompt_id"], body["number"]

    def runs(self) -> list:
        """("start"|"end", tag) in the order the drill node wrote them, over every life of the server."""
        if not self.run_log.exists():
            return []
        return [tuple(line.split(" ", 1)) for line in self.run_log.read_text().splitlines()]

    def journal_status(self) -> dict:
        return self.status()["adapter"]["journal"]

    def crash_and_start(self, remove_pack: bool = False) -> dict:
        """kill -9 once the journal has committed every change (it writes a few ms after a change),
        then start on the same folders; returns the journal status once restored."""
        self.wait_written()
        self.server.kill()
        if remove_pack:
            self.pack_link.unlink()
        self.server.start()
        return wait_until(lambda: (lambda j: j if not j["restoring"] else None)(self.journal_status()),
                          60, what="the journal to be restored")

    def wait_written(self, timeout: float = 10.0) -> dict:
        return wait_until(lambda: (lambda j: j if j["unwritten"] == 0 else None)(self.journal_status()),
                          timeout, what="the journal to commit its changes")

    def wait_held(self, count: int, timeout: float = 30.0) -> list:
        return wait_until(lambda: (lambda ids: ids if len(ids) == count else None)(self.held_ids()),
                          timeout, what=f"{count} held prompts")

    def wait_done(self, prompt_ids, timeout: float = 120.0) -> dict:
        """The history entries of these prompts once all have ended."""
        def done():
            history = self.client.get_json("/history")
            ended = {pid: history[pid] for pid in prompt_ids
                     if pid in history and history[pid].get("status", {}).get("status_str") in ("success", "error")}
            return ended if len(ended) == len(prompt_ids) else None

        return wait_until(done, timeout, interval=0.2, what=f"{len(prompt_ids)} prompts in /history")


def error_message(history_entry: dict) -> str:
    for event, data in history_entry["status"]["messages"]:
        if event == "execution_error":
            return data["exception_message"]
    raise AssertionError(f"no execution_error in {history_entry['status']}")


def files_under(folder: Path):
    for root, _dirs, names in os.walk(folder):
        for name in names:
            yield Path(root) / name
