"""With no usable probe (GPU_GUARD_PROBE=off, or auto on a CPU-only host) the guard is off: ComfyUI
runs every prompt as without the pack, and the routes say why."""
import pytest

from tests.gpu_guard.conftest import start_guarded_server
from tests.gpu_guard.guard_drill import tiny_workflow

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module", params=["off", "auto"])
def unguarded(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"guard_{request.param}")
    server = start_guarded_server(base / "server", f"gpu_guard_{request.param}",
                                  {"GPU_GUARD_PROBE": request.param})
    yield request.param, server
    server.stop()


def test_guard_off_lets_everything_run_and_says_so(unguarded):
    spec, server = unguarded
    status = server.get_json("/gpu_guard/status")
    assert status["state"] == "off"
    if spec == "auto":  # the harness runs ComfyUI with --cpu: off even on a host with a GPU, and says why
        assert status["probe"]["note"].startswith("ComfyUI executes on cpu, not on a CUDA GPU"), status["probe"]
    assert status["held"] == []
    ready = server.get("/gpu_guard/ready")
    assert ready.status_code == 200 and ready.json()["reason"].startswith("guard off")
    pids = [server.post_prompt(tiny_workflow(9000 + i)) for i in range(3)]
    for pid in pids:
        assert server.wait_history(pid, timeout=60)["status"]["status_str"] == "success"
    assert server.get_json("/gpu_guard/status")["adapter"]["hook_errors"] == 0
