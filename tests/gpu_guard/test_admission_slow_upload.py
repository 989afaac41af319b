"""A slow upload must not hold a place in the bounded hold queue while its body trickles in: the 429
reservation is taken once the body is read, so prompts that are complete get the places."""
import json
import socket
import time

import pytest

from tests.gpu_guard.guard_drill import tiny_workflow, wait_until

pytestmark = pytest.mark.comfyui


class SlowUpload:
    """A raw-socket POST /prompt that sends its headers and half of its body, then waits to be finished."""

    def __init__(self, port: int, workflow: dict):
        self.body = json.dumps({"prompt": workflow}).encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = (f"POST /prompt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n").encode()
        self.half = len(self.body) // 2
        self.sock.sendall(head + self.body[:self.half])

    def finish(self) -> tuple:
        """Sends the rest of the body; returns (status code, parsed JSON body) of the answer."""
        self.sock.sendall(self.body[self.half:])
        answer = b""
        while chunk := self.sock.recv(65536):
            answer += chunk
        self.sock.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)


def test_slow_uploads_do_not_fill_the_hold_queue(drill):
    drill.set_config(max_held=2)
    drill.pause()
    slow = [SlowUpload(drill.client.port, tiny_workflow(7000 + i)) for i in range(3)]
    try:
        # give ComfyUI time to pass each slow request's headers to the middleware chain
        time.sleep(1.0)
        fast = [drill.client.post_prompt_raw(tiny_workflow(7100 + i)) for i in range(2)]
        assert [r.status_code for r in fast] == [200, 200], [r.text for r in fast]
        fast_ids = sorted(r.json()["prompt_id"] for r in fast)
        # the hold queue is full now: the slow ones, once complete, are refused
        answers = [upload.finish() for upload in slow]
    finally:
        for upload in slow:
            upload.sock.close()
    assert [status for status, _body in answers] == [429, 429, 429]
    assert all(body["error"]["type"] == "gpu_guard_busy" for _status, body in answers)
    wait_until(lambda: sorted(drill.held_ids()) == fast_ids, what="the two complete prompts held")


def test_a_slow_upload_that_completes_while_there_is_room_is_queued_intact(drill):
    """The middleware reads the body first; ComfyUI's handler must still get all of it."""
    drill.set_config(max_held=2)
    drill.pause()
    upload = SlowUpload(drill.client.port, tiny_workflow(7200))
    status, body = upload.finish()
    assert status == 200, body
    wait_until(lambda: drill.held_ids() == [body["prompt_id"]], what="the uploaded prompt held")
    drill.resume()
    assert drill.client.wait_history(body["prompt_id"], timeout=60)["status"]["status_str"] == "success"
