"""Two ComfyUIs on one user directory (one install, `--cuda-device 0` and `1`): neither restores,
runs or deletes the other's prompts, whichever starts first (real ComfyUI 0.3.75 processes)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gpu_guard import dir_owner
from tests.gpu_guard.guard_drill import wait_until
from tests.persistence.journal_drill import JournalDrill

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


def drill_on(comfy_factory, device, user_dir=None):
    extra = ["--cuda-device", str(device)] + (["--user-directory", str(user_dir)] if user_dir else [])
    server = comfy_factory(checkpoint=False, start=False, extra_args=tuple(extra))
    drill = JournalDrill(server)
    server.start()
    return drill


def restored(drill) -> dict:
    return wait_until(lambda: (lambda j: j if not j["restoring"] else None)(drill.journal_status()), 60,
                      what="the journal to be restored")


def test_neither_comfyui_restores_the_others_prompts(comfy_factory):
    a = drill_on(comfy_factory, 0)
    a.read_ratio(0.9)
    a.wait_state("paused")
    held = [a.post(f"a{i}")[0] for i in range(3)]
    a.wait_written()
    assert a.journal_status()["path"].endswith("/gpu_guard_journal.sqlite3")

    b = drill_on(comfy_factory, 1, user_dir=a.server.folders.user)  # same directory, while A runs
    journal = restored(b)
    assert journal["path"].endswith("/gpu_guard_journal.cuda-1.sqlite3") and journal["restored"] == 0
    assert "another ComfyUI holds" in journal["note"] and b.pending_ids() == []
    assert "gpu_guard_events.cuda-1.jsonl" in b.status()["ops"]["event_log"]["path"]

    a.server.kill()
    b.server.kill()
    b.server.start()  # after a reboot, device 1 comes up first: device 0's journal is still not its own
    journal = restored(b)
    assert journal["path"].endswith("/gpu_guard_journal.cuda-1.sqlite3") and journal["restored"] == 0
    assert "belong to the ComfyUI started as cuda-0" in journal["note"] and b.pending_ids() == []

    a.server.start()
    assert restored(a)["restored"] == 3 and a.held_ids() == held
    a.read_ratio(0.1)
    a.wait_done(held)
    assert sorted(tag for edge, tag in a.runs() if edge == "end") == ["a0", "a1", "a2"]
    assert b.runs() == []


HOLDER = textwrap.dedent("""
    import sys, time
    from gpu_guard import dir_owner
    claim = dir_owner.claim(sys.argv[1], cuda_device=None, port=8188)
    print(repr(claim.suffix), flush=True)
    time.sleep(60)
""")


def test_a_second_process_without_an_identity_gets_names_of_its_own(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "''"  # the first process: the default names
        second = dir_owner._claim(str(tmp_path), "", "port-8189")
        assert second.suffix == ".port-8189" and "another ComfyUI holds" in second.note
        assert second.name("gpu_guard_journal.sqlite3") == "gpu_guard_journal.port-8189.sqlite3"
        third = dir_owner._claim(str(tmp_path), "", "port-8189")  # its own names taken too: no files
        assert third.suffix is None and third.name("gpu_guard_journal.sqlite3") is None
        assert "prompts are NOT journaled" in third.note
    finally:
        holder.kill()
        holder.wait()
    assert dir_owner._claim(str(tmp_path), "", "port-8190").suffix == ""  # the holder died: its lock is gone
