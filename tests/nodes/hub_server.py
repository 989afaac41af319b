"""A loopback HTTP server that speaks the Hugging Face Hub's file-resolve protocol, for download tests.

Two listeners, as on the real Hub: the "hub" answers `HEAD|GET /{repo}/resolve/{revision}/{file}` with
a 302 to the "cdn" (another origin, so huggingface_hub reads the file's metadata from the redirect
itself, as it does for huggingface.co) carrying `X-Repo-Commit`, `X-Linked-Etag` (the sha256 of the
LFS object), `X-Linked-Size` and `ETag`; an unknown file gets 404 with `X-Error-Code: EntryNotFound`.
The cdn serves `GET /blobs/{sha256}` whole or from a `Range: bytes=N-` (206 + `Content-Range`).

Per file the test can make the server lie: serve other bytes than the ones it advertises (`served`),
advertise another size (`advertised_size`), or drop the connection after some bytes on the next
`drops` GETs (`drop_after`). Every request is recorded (method, path, Range, Authorization).
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import threading

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclasses.dataclass
class HubFile:
    data: bytes  # what the Hub advertises (its sha256 and size)
    served: bytes | None = None  # what the cdn actually sends; None = data
    advertised_size: int | None = None  # X-Linked-Size; None = len(data)
    drop_after: int | None = None  # bytes sent before the link dies
    drops: int = 0  # how many of the next GETs die that way

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclasses.dataclass
class Seen:
    listener: str  # "hub" | "cdn"
    method: str
    path: str
    range: str | None
    authorization: str | None


class HubServer:
    def __init__(self, repo: str, files: dict[str, HubFile] | None = None):
        self.repo = repo
        self.files: dict[str, HubFile] = dict(files or {})
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._servers = [self._listen("hub"), self._listen("cdn")]
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]
        for thread in self._threads:
            thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def seen(self, listener: str | None = None, method: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests
                    if (listener is None or r.listener == listener) and (method is None or r.method == method)]

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def _listen(self, listener: str) -> http.server.ThreadingHTTPServer:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(with_body=False)

            def do_GET(self):
                self._answer(with_body=True)

            def _answer(self, with_body: bool):
                hub._record(Seen(listener, self.command, self.path, self.headers.get("Range"),
                                 self.headers.get("Authorization")))
                if listener == "hub":
                    hub._resolve(self)
                else:
                    hub._blob(self, with_body)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server

    def _resolve(self, handler) -> None:
        prefix = f"/{self.repo}/resolve/"
        path = handler.path.split("?", 1)[0]
        if not path.startswith(prefix) or path.count("/") < self.repo.count("/") + 4:
            self._error(handler, 404, "RepoNotFound", "Repository not found")
            return
        _revision, filename = path[len(prefix):].split("/", 1)
        file = self.files.get(filename)
        if file is None:
            self._error(handler, 404, "EntryNotFound", "Entry not found")
            return
        handler.send_response(302)
        handler.send_header("Location", f"{self.cdn}/blobs/{file.sha256}")
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("X-Linked-Etag", f'"{file.sha256}"')
        handler.send_header("X-Linked-Size", str(file.advertised_size if file.advertised_size is not None
                                                 else len(file.data)))
        handler.send_header("ETag", f'"{file.sha256}"')
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _blob(self, handler, with_body: bool) -> None:
        sha = handler.path.split("?", 1)[0].rsplit("/", 1)[-1]
        file = next((f for f in self.files.values() if f.sha256 == sha), None)
        if file is None:
            handler.send_error(404)
            return
        body = file.served if file.served is not None else file.data
        start = 0
        wanted = handler.headers.get("Range", "")
        if wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[len("bytes="):-1])
        if start:
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) - start))
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if not with_body:
            return
        with self._lock:
            drop = file.drops > 0 and file.drop_after is not None
            if drop:
                file.drops -= 1
        if drop:
            handler.wfile.write(body[start:start + file.drop_after])
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)  # the link dies mid-file
            handler.close_connection = True
            return
        handler.wfile.write(body[start:])

    def _error(self, handler, status: int, code: str, message: str) -> None:
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", message)
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
