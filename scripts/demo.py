"""The demo: a real ComfyUI with this pack colourises the sample photo through the person workflow.

Run through scripts/demo (which sets up .venv first). Steps: install ComfyUI 0.3.75 (cached), find a
DDColor checkpoint (DDCOLOR_CHECKPOINT, else models/ddcolor/ in the repo; without one, synthetic
weights are written and the output says so), start ComfyUI with the pack, queue
workflows/api/person.json through POST /prompt, wait, print the output image and the UI's URL, and
keep ComfyUI running until Ctrl-C (--once: stop after the run).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the harness lives in tests/harness (a namespace package)

from tests.harness.client import PromptRejected  # noqa: E402
from tests.harness.comfyui_install import InstallError, ensure_comfyui  # noqa: E402
from tests.harness.events import EventTimeout  # noqa: E402
from tests.harness.provision import build_server  # noqa: E402
from tests.harness.server import ComfyStartError  # noqa: E402
from tests.harness.weights import SYNTHETIC_NAME, WeightsError, write_synthetic_checkpoint  # noqa: E402

WORKFLOW = REPO_ROOT / "workflows" / "api" / "person.json"
OFFICIAL_NAMES = ("ddcolor_paper_tiny.pth", "ddcolor_modelscope.pth", "ddcolor_paper.pth", "ddcolor_artistic.pth")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
SYNTHETIC_NOTICE = """\
************************************************************************************
  SYNTHETIC WEIGHTS: no DDColor checkpoint was found, so this run uses random,
  untrained weights. The colours in the output come from those synthetic weights,
  NOT from a trained DDColor model: they mean nothing.
  For real colours, download an official checkpoint, e.g.
      .venv/bin/python -m nodes.download ddcolor_paper_tiny.pth --dest models/ddcolor
  (or set DDCOLOR_CHECKPOINT=/path/to/ddcolor_*.pth) and run the demo again.
************************************************************************************"""


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def find_checkpoint(models_dir: Path) -> Path | None:
    """DDCOLOR_CHECKPOINT, else an official release in `models_dir`, else any other checkpoint there."""
    named = os.environ.get("DDCOLOR_CHECKPOINT")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise SystemExit(f"demo: DDCOLOR_CHECKPOINT={named} is not a file; fix the path or unset it")
        return path.resolve()
    for name in OFFICIAL_NAMES:
        if (models_dir / name).is_file():
            return (models_dir / name).resolve()
    others = sorted(p for p in models_dir.glob("*") if p.suffix in CHECKPOINT_SUFFIXES
                    and not p.name.startswith("ddcolor_synthetic"))
    return others[0].resolve() if others else None


def synthetic_checkpoint(workdir: Path) -> Path:
    path = workdir / "weights" / SYNTHETIC_NAME.format(variant="tiny")
    if not path.is_file():
        say("writing synthetic tiny DDColor weights (about 220 MB) ...")
        write_synthetic_checkpoint(path, "tiny", source="pack")
    return path


def pick_port(wanted: int) -> int:
    """`wanted` when it is free on loopback, else 0 (the harness then picks a free port)."""
    if wanted == 0:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            say(f"port {wanted} is busy; using a free one")
            return 0
    return wanted


def has_accelerator() -> bool:
    """Whether ComfyUI would find a GPU (CUDA/ROCm or Apple MPS); without one it must be told --cpu."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available())


def person_workflow(checkpoint_name: str) -> dict:
    workflow = copy.deepcopy(json.loads(WORKFLOW.read_text(encoding="utf-8")))
    loaders = [n for n in workflow.values() if n["class_type"] == "DDColorModelLoader"]
    if len(loaders) != 1:
        raise SystemExit(f"demo: {WORKFLOW} should have one DDColorModelLoader, has {len(loaders)}")
    loaders[0]["inputs"]["ckpt_name"] = checkpoint_name
    return workflow


def run_person_workflow(server, checkpoint_name: str, timeout: float) -> list[Path]:
    """Queues the person workflow, prints progress, returns the output image paths."""
    workflow = person_workflow(checkpoint_name)
    for node in workflow.values():
        if node["class_type"] == "LoadImage" and not (server.folders.input / node["inputs"]["image"]).is_file():
            raise SystemExit(f"demo: {node['inputs']['image']} is not in ComfyUI's input folder "
                             f"({server.folders.input}); the pack should have copied it there at start-up")
    with server.events() as events:
        prompt_id = server.post_prompt(workflow, client_id=events.client_id)
        say(f"queued {WORKFLOW.relative_to(REPO_ROOT)} as prompt {prompt_id}")
        end = events.wait_for_prompt_end(prompt_id, timeout=timeout)
    entry = server.wait_history(prompt_id, timeout=30)
    if end.type != "execution_success" or entry["status"]["status_str"] != "success":
        messages = [m for m in entry["status"].get("messages", []) if m[0] == "execution_error"]
        detail = messages[0][1].get("exception_message", "") if messages else end.type
        raise SystemExit(f"demo: the workflow failed: {detail.strip()}\n(ComfyUI log: {server.log_path})")
    return [server.output_file(image) for image in server.output_images(entry)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="stop ComfyUI after the run instead of keeping it up")
    parser.add_argument("--port", type=int, default=8188, help="port for ComfyUI (default 8188; busy: a free one)")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / ".cache" / "demo",
                        help="folder for ComfyUI's input/output/user folders and synthetic weights")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the workflow")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto: the GPU when torch sees one, else the CPU")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()

    try:
        say(f"ComfyUI at {ensure_comfyui()}")
        checkpoint = find_checkpoint(REPO_ROOT / "models" / "ddcolor")
        synthetic = checkpoint is None
        if synthetic:
            checkpoint = synthetic_checkpoint(workdir)
        say(f"checkpoint: {checkpoint}" + (" (SYNTHETIC)" if synthetic else ""))
        server = build_server(workdir / "comfyui", name="demo", probe=False, checkpoint=checkpoint,
                              log_path=workdir / "comfyui.log", inherit_guard_env=True,
                              port=pick_port(args.port),
                              cpu=args.device == "cpu" or (args.device == "auto" and not has_accelerator()))
        say("starting ComfyUI with the pack ...")
        server.start()
    except (InstallError, WeightsError, ComfyStartError) as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 1

    try:
        say(f"ComfyUI is up at {server.url} (log: {server.log_path})")
        outputs = run_person_workflow(server, server.checkpoint_name, args.timeout)
        if synthetic:
            print(SYNTHETIC_NOTICE, flush=True)
        for path in outputs:
            print(f"OUTPUT: {path}", flush=True)
        print(f"UI: {server.url}/", flush=True)
        say("in the UI: open the template browser (Browse Templates) > comfyui-ddcolor-vram-guard > person, then pick "
            f"{server.checkpoint_name} in the DDColor loader")
        if args.once:
            return 0
        say("ComfyUI keeps running; press Ctrl-C to stop it")
        try:
            server.process.wait()
        except KeyboardInterrupt:
            print()
        return 0
    except (PromptRejected, EventTimeout) as error:
        print(f"demo: error: {error}\n(ComfyUI log: {server.log_path})", file=sys.stderr)
        return 1
    finally:
        server.stop()
        say("ComfyUI stopped")


if __name__ == "__main__":
    sys.exit(main())
