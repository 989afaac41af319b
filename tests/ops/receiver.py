"""A loopback HTTP receiver for webhook tests: records every request (header names lower-cased) and
answers from a script.

Each entry of `script` answers one request, in order (the last one repeats): an HTTP status (int),
("hang", seconds) to answer 200 only after that long (a client with a shorter timeout gives up),
("redirect", url) to answer 307 with that Location, or (status, body bytes).
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Received:
    def __init__(self, path, headers, body, at):
        self.path, self.headers, self.body, self.at = path, headers, body, at

    def json(self):
        import json
        return json.loads(self.body)


class Receiver:
    def __init__(self, script=(200,), body=b"ok"):
        self.script = list(script)
        self.default_body = body
        self.requests: list = []
        self._cond = threading.Condition()
        self.release = threading.Event()  # set to end every "hang" at once
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._cond:
                    index = len(receiver.requests)
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                           body, time.monotonic()))
                    receiver._cond.notify_all()
                    step = receiver.script[min(index, len(receiver.script) - 1)]
                status, answer, location = 200, receiver.default_body, None
                if isinstance(step, tuple) and step[0] == "hang":
                    receiver.release.wait(step[1])
                elif isinstance(step, tuple) and step[0] == "redirect":
                    status, location = 307, step[1]
                elif isinstance(step, tuple):
                    status, answer = step
                else:
                    status = step
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if location:
                        self.send_header("Location", location)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count, timeout=10.0):
        """The first `count` requests, waiting up to timeout for them."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.requests) >= count, timeout)
            assert ok, f"expected {count} requests, got {len(self.requests)} in {timeout} s"
            return list(self.requests[:count])
