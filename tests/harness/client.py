"""HTTP client for a running ComfyUI: the routes that the tests and the demo drive."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from .events import EventStream


class PromptRejected(AssertionError):
    """`POST /prompt` answered with an error; `.status` and `.body` hold ComfyUI's answer."""

    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        super().__init__(f"/prompt answered {status}: {json.dumps(body)[:2000]}")


class HistoryTimeout(AssertionError):
    """A prompt did not reach the history in time."""


class ComfyClient:
    """Talks to ComfyUI at `url` (http://host:port) over HTTP and websocket."""

    is_local = False  # True for a server whose process and folders this harness owns
    probe = None  # ProbeFile that the guard of a harness-started server reads (None: not ours to drive)
    checkpoint_name = None  # a DDColor checkpoint in the server's ddcolor folder, when one was placed

    def __init__(self, url: str, request_timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.request_timeout = request_timeout
        self.http = requests.Session()

    @property
    def probe_path(self) -> Path | None:
        return self.probe.path if self.probe is not None else None

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):] + "/ws"

    # ------------------------------------------------------------ plain HTTP

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.request_timeout)
        return self.http.get(self.url + path, **kwargs)

    def post(self, path: str, json_body: Any = None, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.request_timeout)
        return self.http.post(self.url + path, json=json_body, **kwargs)

    def get_json(self, path: str, **kwargs) -> Any:
        response = self.get(path, **kwargs)
        response.raise_for_status()
        return response.json()

    # ------------------------------------------------------------ prompts

    def post_prompt_raw(self, api_workflow: dict, client_id: str | None = None, **fields) -> requests.Response:
        """POST /prompt as the frontend does; `fields` adds e.g. front=True or extra_data."""
        body = {"prompt": api_workflow, **fields}
        if client_id is not None:
            body["client_id"] = client_id
        return self.post("/prompt", body)

    def post_prompt(self, api_workflow: dict, client_id: str | None = None, **fields) -> str:
        """Queues an API-format workflow and returns its prompt_id; PromptRejected on an error answer."""
        response = self.post_prompt_raw(api_workflow, client_id=client_id, **fields)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code != 200:
            raise PromptRejected(response.status_code, body)
        return body["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        """The history entry of a finished prompt, or None while it is queued or running."""
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def wait_history(self, prompt_id: str, timeout: float = 120.0, poll_s: float = 0.2) -> dict:
        """Waits until the prompt has finished (successfully or not) and returns its history entry."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None and (entry.get("status") or {}).get("status_str") in ("success", "error"):
                return entry
            if time.monotonic() >= deadline:
                raise HistoryTimeout(
                    f"prompt {prompt_id} not finished after {timeout:.0f}s; queue: {self.queue()}")
            time.sleep(poll_s)

    def queue(self) -> dict:
        """`GET /queue`: {"queue_running": [...], "queue_pending": [...]}."""
        return self.get_json("/queue")

    def wait_queue_empty(self, timeout: float = 120.0, poll_s: float = 0.2) -> None:
        """Waits until nothing is running or pending (tests share the session's server)."""
        deadline = time.monotonic() + timeout
        while True:
            queue = self.queue()
            if not queue["queue_running"] and not queue["queue_pending"]:
                return
            if time.monotonic() >= deadline:
                raise HistoryTimeout(f"queue not empty after {timeout:.0f}s: "
                                     f"{len(queue['queue_running'])} running, {len(queue['queue_pending'])} pending")
            time.sleep(poll_s)

    def interrupt(self, prompt_id: str | None = None) -> None:
        self.post("/interrupt", {"prompt_id": prompt_id} if prompt_id else {}).raise_for_status()

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self.post("/free", {"unload_models": unload_models, "free_memory": free_memory}).raise_for_status()

    def object_info(self, node: str | None = None) -> dict:
        """All node definitions, or one node's definition (KeyError naming the node when absent)."""
        if node is None:
            return self.get_json("/object_info")
        info = self.get_json(f"/object_info/{node}")
        if node not in info:
            raise KeyError(f"ComfyUI has no node {node!r}; did the pack import? (see the server log)")
        return info[node]

    def system_stats(self) -> dict:
        return self.get_json("/system_stats")

    # ------------------------------------------------------------ files

    def upload_image(self, path: str | Path, subfolder: str = "", overwrite: bool = True) -> dict:
        """Uploads into ComfyUI's input folder; returns {"name", "subfolder", "type"}."""
        path = Path(path)
        with open(path, "rb") as handle:
            response = self.http.post(
                self.url + "/upload/image",
                files={"image": (path.name, handle, "application/octet-stream")},
                data={"subfolder": subfolder, "overwrite": "true" if overwrite else "false"},
                timeout=self.request_timeout,
            )
        response.raise_for_status()
        return response.json()

    def view(self, filename: str, subfolder: str = "", folder_type: str = "output") -> bytes:
        """The bytes of an output/input/temp file through `GET /view` (works on remote servers too)."""
        response = self.get("/view", params={"filename": filename, "subfolder": subfolder, "type": folder_type})
        response.raise_for_status()
        return response.content

    @staticmethod
    def output_images(history_entry: dict) -> list[dict]:
        """Every image an entry's nodes output: [{"filename", "subfolder", "type", "node"}]."""
        images = []
        for node_id, output in (history_entry.get("outputs") or {}).items():
            for image in output.get("images", []):
                images.append({**image, "node": node_id})
        return images

    # ------------------------------------------------------------ websocket

    def events(self, client_id: str | None = None) -> EventStream:
        """A websocket listener for `client_id` (a fresh id when None); close it when done."""
        return EventStream(self.ws_url, client_id or uuid.uuid4().hex)
