"""Neighbours on one GPU: the registry, liveness by pid and start time, who is asked, who releases.

Neighbour processes are real child processes (their pid and start time are what a claim carries);
the guard of each is a NeighbourWatch driven tick by tick on a fake clock (conftest.py).
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gpu_guard.neighbours import Mine, NeighbourWatch, Pressure, Registry, who_to_ask
from gpu_guard.neighbours import process_identity, registry as registry_module, watch as watch_module
from gpu_guard.neighbours.device_key import device_key_of
from gpu_guard.neighbours.process_identity import ProcessId
from gpu_guard.neighbours.registry import Claim, default_base_dir

GIB = 1 << 30
DEVICE = "sim:/tmp/shared-device.json"


@pytest.fixture
def child():
    """A live process to stand for a neighbour (its identity is what a claim carries)."""
    procs = []

    def spawn():
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        procs.append(proc)
        for _ in range(100):  # /proc/PID/stat exists from fork on; wait until it is our python
            if process_identity.start_time(proc.pid) is not None:
                break
            time.sleep(0.01)
        me = process_identity.this_process()
        return proc, ProcessId(proc.pid, process_identity.start_time(proc.pid), me.pidns)

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()  # reaped: the pid is gone (an unreaped one is a zombie, also dead: see below)


def claim(name="a", pid=1, idle=0, cache=0, busy=False):
    return Claim(pid, "1", "ns", name, DEVICE, idle, cache, busy, 0, 0.0)


# -- process identity --------------------------------------------------------------------------------

def test_this_process_is_alive_and_a_reused_pid_is_not():
    me = process_identity.this_process()
    assert me.start is not None and process_identity.alive(me)
    assert not process_identity.alive(ProcessId(me.pid, str(int(me.start) + 1), me.pidns))


def test_killed_and_zombie_processes_are_dead(child):
    proc, ident = child()
    assert process_identity.alive(ident)
    proc.send_signal(signal.SIGKILL)
    for _ in range(200):  # not reaped yet: a zombie, which holds no memory and serves nobody
        if process_identity.start_time(proc.pid) is None:
            break
        time.sleep(0.01)
    assert not process_identity.alive(ident)
    proc.wait()
    assert not process_identity.alive(ident)


# -- registry ----------------------------------------------------------------------------------------

def test_claims_are_seen_by_the_other_guard_and_not_by_oneself(tmp_path, child, clock):
    _, a_id = child()
    a = Registry(str(tmp_path), DEVICE, me=a_id, name="a:8188", wall=clock.wall)
    b = Registry(str(tmp_path), DEVICE, name="b:8189", wall=clock.wall)
    a.publish(3 * GIB, GIB // 2, busy=False, pending=0)
    b.publish(0, 0, busy=False, pending=2)
    seen_by_b = b.neighbours()
    assert [(c.name, c.idle_models_bytes, c.torch_cache_bytes) for c in seen_by_b] == [("a:8188", 3 * GIB, GIB // 2)]
    assert [c.name for c in a.neighbours()] == ["b:8189"]
    # another device is another folder: no neighbours there
    assert Registry(str(tmp_path), "gpu:other", wall=clock.wall).neighbours() == []


def test_a_killed_neighbour_leaves_no_claim_and_no_request(tmp_path, child, clock):
    proc, a_id = child()
    a = Registry(str(tmp_path), DEVICE, me=a_id, name="a", wall=clock.wall)
    b = Registry(str(tmp_path), DEVICE, name="b", wall=clock.wall)
    a.publish(GIB, 0, busy=False, pending=0)
    b.ask(b.neighbours()[0], "test")
    assert len(os.listdir(a.dir)) == 2  # A's claim and B's request to A
    kill(proc)
    assert b.neighbours() == []
    assert os.listdir(b.dir) == []


def test_a_claim_from_another_pid_namespace_lives_by_its_heartbeat(tmp_path, clock):
    b = Registry(str(tmp_path), DEVICE, name="b", wall=clock.wall)
    other = Claim(1, "12345", "pid:[1]", "in-a-container", DEVICE, GIB, 0, False, 0, clock.wall())
    path = os.path.join(b.dir, "1-12345.claim.json")
    with open(path, "w") as f:
        json.dump(other.as_dict(), f)
    # pid 1 exists here with another start time, but its namespace differs: the pid is not checked
    assert [c.name for c in b.neighbours()] == ["in-a-container"]
    clock.advance(registry_module.STALE_AFTER_S + 0.1)
    assert b.neighbours() == []
    assert not os.path.exists(path)


def test_requests_are_read_once_and_dropped_when_the_asker_died(tmp_path, child, clock):
    asker_proc, asker_id = child()
    a = Registry(str(tmp_path), DEVICE, name="a", wall=clock.wall)
    b = Registry(str(tmp_path), DEVICE, me=asker_id, name="b", wall=clock.wall)
    a.publish(GIB, 0, busy=False, pending=0)
    b.ask(b.neighbours()[0], "first")
    taken = a.take_requests()
    assert [r["reason"] for r in taken] == ["first"] and a.take_requests() == []
    b.ask(b.neighbours()[0], "second")
    kill(asker_proc)
    assert a.take_requests() == []


def test_a_registry_folder_of_another_user_is_refused(tmp_path, monkeypatch):
    Registry(str(tmp_path), DEVICE)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(str(tmp_path)).st_uid + 1)
    with pytest.raises(PermissionError, match="neighbours_dir"):
        Registry(str(tmp_path), DEVICE)


def test_default_dir_needs_no_configuration(tmp_path):
    assert default_base_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == str(tmp_path / "gpu_guard-neighbours")
    fallback = default_base_dir({}, uid=1234)
    assert fallback.endswith("gpu_guard-neighbours-1234")


def test_device_keys_name_the_physical_device():
    class Probe:
        def __init__(self, name, device_key=None):
            self.name, self.device_key = name, device_key

    assert device_key_of(Probe("nvml:0 (cuda:0)", "gpu:6bd2")) == "gpu:6bd2"
    assert device_key_of(Probe("sim:/tmp/x/../dev.json")) == "sim:" + os.path.realpath("/tmp/dev.json")
    assert device_key_of(Probe("file:/tmp/dev.json")) is None  # exact-number drills stay alone
    assert device_key_of(Probe("ram")) is None and device_key_of(None) is None


# -- who is asked --------------------------------------------------------------------------------------

def holding(pressure_ratio, total=10 * GIB, resume_at=0.75, held=True):
    return Pressure(held, int(pressure_ratio * total), total, resume_at)


def test_nobody_is_asked_unless_prompts_are_held_by_memory():
    idle = [claim("a", idle=5 * GIB)]
    assert who_to_ask(holding(0.90, held=False), idle) == []
    assert who_to_ask(holding(0.70), idle) == []  # below resume_at: not what keeps it paused


def test_the_fewest_largest_idle_neighbours_that_would_resume_it_are_asked():
    a, b, c = claim("a", 1, idle=GIB), claim("b", 2, idle=2 * GIB, cache=GIB // 2), claim("c", 3, idle=4 * GIB, busy=True)
    # 0.90 of 10 GiB, resume below 7.5 GiB: 1.5 GiB must go; b (2.5 GiB) alone does it; c is busy
    assert [x.name for x in who_to_ask(holding(0.90), [a, b, c])] == ["b"]
    # 0.99: 2.4 GiB must go... b then a
    assert [x.name for x in who_to_ask(holding(0.99), [a, b, c])] == ["b"]
    assert [x.name for x in who_to_ask(holding(1.0), [a, b, c])] == ["b", "a"]


def test_nobody_is_asked_when_all_idle_memory_would_not_resume_it():
    # the neighbours would lose their warm models and this guard would stay paused
    assert who_to_ask(holding(0.95), [claim("a", idle=GIB)]) == []


# -- two guards, tick by tick --------------------------------------------------------------------------

class Guard:
    """What a NeighbourWatch needs from one guard and its ComfyUI."""

    def __init__(self, idle=0, cache=0, busy=False):
        self.idle, self.cache, self.busy = idle, cache, busy
        self.pressure = None
        self.enabled = True
        self.released = 0

    def mine(self):
        return Mine(self.idle, self.cache, self.busy, 0)

    def release_idle(self):
        if self.busy or not self.idle:
            return False
        self.released += 1
        self.idle = self.cache = 0
        return True


def watch_for(guard, registry, clock):
    return NeighbourWatch(registry, guard.mine, lambda: guard.pressure, guard.release_idle,
                          enabled=lambda: guard.enabled, monotonic=clock.monotonic, wall=clock.wall)


@pytest.fixture
def pair(tmp_path, child, clock):
    """A (a child process's identity, idle with a 3 GiB model) and B (this process, holding at 0.90)."""
    _, a_id = child()
    a = Guard(idle=3 * GIB, cache=GIB // 4)
    b = Guard()
    b.pressure = holding(0.90)
    watch_a = watch_for(a, Registry(str(tmp_path), DEVICE, me=a_id, name="a", wall=clock.wall), clock)
    watch_b = watch_for(b, Registry(str(tmp_path), DEVICE, name="b", wall=clock.wall), clock)
    return a, b, watch_a, watch_b


def test_the_holding_guard_asks_once_and_the_idle_neighbour_releases(pair, clock, tmp_path):
    a, b, watch_a, watch_b = pair
    watch_a.tick()
    watch_b.tick()
    assert watch_b.asks_sent == 1 and watch_b.last_ask["to"] == "a"
    watch_b.tick()
    assert watch_b.asks_sent == 1  # rate-limited
    watch_a.tick()
    assert a.released == 1 and watch_a.last_release["for"] == "b"
    status = watch_b.status()
    assert status["neighbours"][0]["name"] == "a" and status["me"]["name"] == "b"
    # a caller that may not operate the guard learns the bytes, not who or where the servers are
    anonymous = watch_b.status(identities=False)
    shown = json.dumps(anonymous)
    for secret in ('"a"', '"b"', str(tmp_path), DEVICE):
        assert secret not in shown, secret
    # pids as values, not substrings: a pid's digits may stand inside a byte count
    assert (anonymous["me"]["name"], anonymous["me"]["pid"]) == (None, None)
    assert anonymous["neighbours"][0]["idle_models_bytes"] == status["neighbours"][0]["idle_models_bytes"]
    assert {k for k, v in anonymous["neighbours"][0].items() if v is None} == {"name", "pid"}
    assert anonymous["asks_sent"] == 1 and set(anonymous["last_ask"]) == {"at", "releasable_bytes"}
    assert set(watch_a.status(identities=False)["last_release"]) == {"at"}
    watch_a.tick()  # published after the release: nothing left to ask for
    clock.advance(watch_module.ASK_INTERVAL_S)
    watch_b.tick()
    assert watch_b.asks_sent == 1
    assert watch_b.status()["neighbours"][0]["idle_models_bytes"] == 0


def test_a_busy_neighbour_releases_only_once_idle_and_not_more_often_than_the_interval(pair, clock):
    a, b, watch_a, watch_b = pair
    a.busy = True
    watch_a.tick()
    watch_b.tick()
    assert watch_b.asks_sent == 0  # a busy neighbour is not asked
    a.busy = False
    watch_a.tick()
    watch_b.tick()
    assert watch_b.asks_sent == 1
    a.busy = True  # it took a prompt meanwhile: the request waits for an idle moment
    watch_a.tick()
    assert a.released == 0 and watch_a.status()["request_waiting"]
    a.busy = False
    watch_a.tick()
    assert a.released == 1
    # it reloads and B asks again after the interval; A honours no more often than HONOUR_INTERVAL_S
    a.idle = 3 * GIB
    watch_a.tick()
    clock.advance(watch_module.ASK_INTERVAL_S)
    watch_b.tick()
    assert watch_b.asks_sent == 2
    watch_a.tick()
    assert a.released == 2


def test_a_request_expires_unanswered(pair, clock):
    a, b, watch_a, watch_b = pair
    watch_a.tick()
    watch_b.tick()
    a.busy = True
    watch_a.tick()
    clock.advance(registry_module.ASK_EXPIRES_S + 1)
    a.busy = False
    watch_a.tick()
    assert a.released == 0 and not watch_a.status()["request_waiting"]


def test_opting_out_withdraws_the_claim(pair, clock):
    a, b, watch_a, watch_b = pair
    a.enabled = False
    watch_a.tick()
    watch_b.tick()
    assert watch_b.status()["neighbours"] == [] and watch_b.asks_sent == 0
    assert watch_a.status()["enabled"] is False


def test_the_holding_guard_does_not_wait_on_a_killed_neighbour(tmp_path, child, clock):
    proc, a_id = child()
    a = Guard(idle=3 * GIB)
    b = Guard()
    b.pressure = holding(0.90)
    watch_a = watch_for(a, Registry(str(tmp_path), DEVICE, me=a_id, name="a", wall=clock.wall), clock)
    watch_b = watch_for(b, Registry(str(tmp_path), DEVICE, name="b", wall=clock.wall), clock)
    watch_a.tick()
    watch_b.tick()
    assert watch_b.asks_sent == 1
    kill(proc)
    clock.advance(watch_module.ASK_INTERVAL_S)
    watch_b.tick()
    assert watch_b.status()["neighbours"] == [] and watch_b.asks_sent == 1
    assert os.listdir(watch_b.registry.dir) == ["%s.claim.json" % watch_b.registry.me.tag]


def test_the_thread_publishes_and_withdraws(tmp_path):
    guard = Guard(idle=GIB)
    watch = NeighbourWatch(Registry(str(tmp_path), DEVICE, name="t"), guard.mine, lambda: None, guard.release_idle)
    watch.start()
    try:
        deadline = time.monotonic() + 10
        while watch.status()["me"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watch.status()["me"]["idle_models_bytes"] == GIB
    finally:
        watch.stop()
    assert os.listdir(watch.registry.dir) == []
