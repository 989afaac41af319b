"""The simulated GPU is one device for every process on the same sim:PATH: each sees the others'
memory, and a killed process's memory is freed at once (as a GPU driver does)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from gpu_guard.probes import make_probe
from gpu_guard.probes.sim_shared import SharedSimProbe

GIB = 1 << 30
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OTHER_PROCESS = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from gpu_guard.probes.sim_shared import SharedSimProbe
    probe = SharedSimProbe({path!r})
    probe.set_models_source(lambda: 3 << 30)  # its ComfyUI keeps a 3 GiB model loaded
    probe.read()
    print("read", flush=True)
    time.sleep(120)
""")


def test_two_processes_share_one_simulated_device_and_a_killed_one_frees_its_memory(tmp_path):
    path = str(tmp_path / "device.json")
    with open(path, "w") as f:
        json.dump({"total_bytes": 10 * GIB, "foreign_bytes": GIB}, f)
    probe, note = make_probe("sim:" + path)
    assert isinstance(probe, SharedSimProbe) and "drill tool" in note
    probe.set_models_source(lambda: 2 * GIB)
    assert probe.read().used_bytes == 3 * GIB  # foreign + this process's model

    other = subprocess.Popen([sys.executable, "-c", OTHER_PROCESS.format(repo=REPO, path=path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "read"
        reading = probe.read()
        assert reading.used_bytes == 6 * GIB and reading.own_bytes == 2 * GIB
        other.send_signal(signal.SIGKILL)
        other.wait()
        started = time.monotonic()
        assert probe.read().used_bytes == 3 * GIB  # the very next reading: nobody waits for a timeout
        assert time.monotonic() - started < 1.0
        assert os.listdir(probe.procs_dir) == [os.path.basename(probe._mine)]
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_a_device_over_committed_by_several_processes_reads_full(tmp_path):
    path = str(tmp_path / "device.json")
    with open(path, "w") as f:
        json.dump({"total_bytes": 4 * GIB, "foreign_bytes": 3 * GIB}, f)
    probe = SharedSimProbe(path)
    probe.set_models_source(lambda: 0)
    me = probe.read()
    with open(os.path.join(probe.procs_dir, "1-{}.json".format("x")), "w") as f:
        json.dump({"pid": os.getpid(), "start": probe._me.start, "own_bytes": 2 * GIB}, f)  # a live owner
    assert probe.read().used_bytes == 4 * GIB and me.used_bytes == 3 * GIB


def test_this_process_publishes_its_bytes_only_when_they_change(tmp_path):
    """The worker reads at every dispatch: a file rewrite per reading was 0.5 ms of each decision
    (bench/bench_queue_hook.py). The others still see every change, and a removed file comes back."""
    path = str(tmp_path / "device.json")
    with open(path, "w") as f:
        json.dump({"total_bytes": 10 * GIB, "foreign_bytes": GIB}, f)
    probe = SharedSimProbe(path)
    models = [2 * GIB]
    probe.set_models_source(lambda: models[0])
    probe.read()
    written = os.stat(probe._mine).st_ino
    for _ in range(5):
        probe.read()
    assert os.stat(probe._mine).st_ino == written  # unchanged bytes: not written again

    models[0] = 3 * GIB
    probe.read()
    with open(probe._mine) as f:
        assert json.load(f)["own_bytes"] == 3 * GIB
    os.unlink(probe._mine)  # as a reader does that took this process for dead
    probe.read()
    with open(probe._mine) as f:
        assert json.load(f)["own_bytes"] == 3 * GIB


def _device(tmp_path, foreign=GIB):
    path = str(tmp_path / "device.json")
    with open(path, "w") as f:
        json.dump({"total_bytes": 10 * GIB, "foreign_bytes": foreign}, f)
    return path


def _publish_as_another(probe, name, own_bytes):
    """A file of another live process (this one's identity under another name: it counts as alive)."""
    with open(os.path.join(probe.procs_dir, name), "w") as f:
        json.dump({"pid": probe._me.pid, "start": probe._me.start, "own_bytes": own_bytes}, f)


def test_the_folder_is_listed_again_only_when_it_changed(tmp_path, monkeypatch):
    from gpu_guard.probes import sim_shared
    probe = SharedSimProbe(_device(tmp_path))
    probe.read()
    old = time.time_ns() - 10 * 10**9
    os.utime(probe.procs_dir, ns=(old, old))  # last changed long ago: a listing of it holds
    listings = []
    real_listdir = os.listdir
    monkeypatch.setattr(sim_shared.os, "listdir", lambda p: listings.append(p) or real_listdir(p))
    probe.read()
    probe.read()
    assert len(listings) == 1
    _publish_as_another(probe, "other.json", 2 * GIB)  # the folder changes: listed again, counted
    assert probe.read().used_bytes == 3 * GIB
    assert len(listings) == 2


def test_a_change_in_the_same_clock_tick_as_the_listing_is_still_seen(tmp_path):
    probe = SharedSimProbe(_device(tmp_path))
    probe.read()
    st = os.stat(probe.procs_dir)
    assert probe.read().used_bytes == GIB  # listed just after a change: the listing is not trusted
    _publish_as_another(probe, "other.json", 2 * GIB)
    os.utime(probe.procs_dir, ns=(st.st_atime_ns, st.st_mtime_ns))  # the mtime did not move
    assert probe.read().used_bytes == 3 * GIB
