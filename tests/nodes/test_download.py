"""The checkpoint downloader against a local HTTP server on loopback: success, integrity failures,
a dropped connection, and never a partial file left behind."""
import hashlib
import http.server
import os
import threading

import pytest

from nodes.download import DownloadError, download, main, release_named
from nodes.releases import BASE_URL_ENV, RELEASES, Release

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # a few chunks, not a multiple of the chunk size
SHA = hashlib.sha256(PAYLOAD).hexdigest()
NAME = "ddcolor_paper_tiny.pth"


class Handler(http.server.BaseHTTPRequestHandler):
    """/<mode>/<file>: ok | hf (redirect carrying X-Linked-* like Hugging Face) | badsha | drop | missing."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        mode = self.path.strip("/").split("/")[0]
        if mode == "missing":
            self.send_error(404)
            return
        if mode in ("hf", "hfbad"):
            self.send_response(302)
            self.send_header("Location", "/ok/" + NAME)
            self.send_header("X-Linked-Size", str(len(PAYLOAD)))
            self.send_header("X-Linked-ETag", '"%s"' % (SHA if mode == "hf" else "0" * 64))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        if mode == "badsha":
            self.send_header("X-Linked-ETag", '"%s"' % ("f" * 64))
        self.end_headers()
        if mode == "drop":
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the link dies mid-file
            return
        self.wfile.write(PAYLOAD)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def use(monkeypatch, server, mode):
    monkeypatch.setenv(BASE_URL_ENV, f"{server}/{mode}/")


def leftovers(folder):
    return sorted(p for p in os.listdir(folder))


def test_success_with_progress_and_no_temp_file(server, monkeypatch, tmp_path):
    use(monkeypatch, server, "ok")
    seen = []
    path = download(Release(NAME, "tiny", size=len(PAYLOAD), sha256=SHA), tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert path == os.path.join(tmp_path, NAME)
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD
    assert leftovers(tmp_path) == [NAME]
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) >= 4
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_hugging_face_redirect_headers_give_size_and_sha(server, monkeypatch, tmp_path):
    use(monkeypatch, server, "hf")
    path = download(RELEASES[NAME], tmp_path)  # no published size/sha: the server's X-Linked-* are used
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == SHA


def test_advertised_sha_mismatch_after_redirect_keeps_nothing(server, monkeypatch, tmp_path):
    use(monkeypatch, server, "hfbad")
    with pytest.raises(DownloadError, match="sha256 .* does not match"):
        download(RELEASES[NAME], tmp_path)
    assert leftovers(tmp_path) == []


def test_size_mismatch_keeps_nothing(server, monkeypatch, tmp_path):
    use(monkeypatch, server, "ok")
    with pytest.raises(DownloadError, match=f"received {len(PAYLOAD)} bytes but {len(PAYLOAD) + 1} were expected"):
        download(Release(NAME, "tiny", size=len(PAYLOAD) + 1), tmp_path)
    assert leftovers(tmp_path) == []


def test_known_sha_mismatch_keeps_nothing(server, monkeypatch, tmp_path):
    use(monkeypatch, server, "ok")
    with pytest.raises(DownloadError, match="not the official release"):
        download(Release(NAME, "tiny", sha256="0" * 64), tmp_path)
    assert leftovers(tmp_path) == []


def test_server_advertised_sha_is_checked(server, monkeypatch, tmp_path):
    use(monkeypatch, server, "badsha")
    with pytest.raises(DownloadError, match="sha256"):
        download(RELEASES[NAME], tmp_path)
    assert leftovers(tmp_path) == []


def test_connection_drop_mid_file_keeps_nothing(server, monkeypatch, tmp_path):
    use(monkeypatch, server, "drop")
    with pytest.raises(DownloadError) as caught:
        download(RELEASES[NAME], tmp_path)
    assert NAME in str(caught.value) and "run the download again" in str(caught.value)
    assert leftovers(tmp_path) == []


def test_http_error_names_the_file_and_the_env_var(server, monkeypatch, tmp_path):
    use(monkeypatch, server, "missing")
    with pytest.raises(DownloadError, match=f"HTTP 404.*{BASE_URL_ENV}"):
        download(RELEASES[NAME], tmp_path)
    assert leftovers(tmp_path) == []


def test_unreachable_server_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(BASE_URL_ENV, "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(DownloadError, match="Could not reach"):
        download(RELEASES[NAME], tmp_path)
    assert leftovers(tmp_path) == []


def test_existing_file_is_never_overwritten(server, monkeypatch, tmp_path):
    use(monkeypatch, server, "ok")
    (tmp_path / NAME).write_bytes(b"the user's own file")
    assert download(RELEASES[NAME], tmp_path) == os.path.join(tmp_path, NAME)
    assert (tmp_path / NAME).read_bytes() == b"the user's own file"


def test_unknown_release_lists_the_choices():
    with pytest.raises(DownloadError, match="ddcolor_paper.pth"):
        release_named("ddcolor_v2.pth")


def test_command_line(server, monkeypatch, tmp_path, capsys):
    use(monkeypatch, server, "hf")
    assert main([NAME, "--dest", str(tmp_path)]) == 0
    assert (tmp_path / NAME).read_bytes() == PAYLOAD
    assert "100.0%" in capsys.readouterr().out
    use(monkeypatch, server, "drop")
    assert main(["ddcolor_artistic.pth", "--dest", str(tmp_path)]) == 1
    assert leftovers(tmp_path) == [NAME]


def test_the_four_official_releases():
    assert {n: r.variant for n, r in RELEASES.items()} == {
        "ddcolor_paper.pth": "large", "ddcolor_modelscope.pth": "large",
        "ddcolor_artistic.pth": "large", "ddcolor_paper_tiny.pth": "tiny"}
