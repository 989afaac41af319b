"""Opt-in download of the official DDColor checkpoints, with an integrity check.

The file is streamed into a temporary file next to its destination, hashed on the way, checked
against the expected size and sha256 and only then renamed into place (an atomic rename on the same
file system), so a failed or interrupted download never leaves a partial checkpoint behind.

Command line (from the pack's folder):  python -m nodes.download ddcolor_paper_tiny.pth --dest DIR
The base URL can be changed with the DDCOLOR_DOWNLOAD_BASE_URL environment variable (a mirror, or a
local server in tests).
"""
import argparse
import hashlib
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request

from .releases import BASE_URL_ENV, DEFAULT_BASE_URL, RELEASES, Release

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(RuntimeError):
    """A download failed; the message names the file, the problem and what to do."""


def base_url():
    return os.environ.get(BASE_URL_ENV, "").strip().rstrip("/") or DEFAULT_BASE_URL


class _RedirectHeaders(urllib.request.HTTPRedirectHandler):
    """Follows redirects and keeps the headers of every hop: Hugging Face puts the LFS object's
    size and sha256 on the first answer (the redirect), not on the CDN's final one."""

    def __init__(self):
        super().__init__()
        self.hops = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.hops.append(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _advertised(headers_list, response):
    """(size, sha256) the server advertises for the file, either may be None."""
    size = sha = None
    for headers in headers_list + [response.headers]:
        linked_size = headers.get("X-Linked-Size")
        if linked_size and linked_size.isdigit():
            size = int(linked_size)
        etag = (headers.get("X-Linked-ETag") or "").strip('"').lower()
        if _SHA256_RE.match(etag):
            sha = etag
    if size is None:
        length = response.headers.get("Content-Length")
        if length and length.isdigit():
            size = int(length)
    return size, sha


def download(release: Release, dest_dir, url=None, progress=None):
    """Download `release` into `dest_dir`; returns the final path.

    progress(done_bytes, total_bytes_or_None) is called after every chunk. An existing file of the
    same name is kept as it is (never overwritten) and its path returned.
    """
    dest_dir = os.fspath(dest_dir)
    final = os.path.join(dest_dir, release.filename)
    if os.path.exists(final):
        return final
    os.makedirs(dest_dir, exist_ok=True)
    url = url or f"{base_url()}/{release.filename}"
    redirects = _RedirectHeaders()
    opener = urllib.request.build_opener(redirects)
    fd, tmp = tempfile.mkstemp(prefix=f".{release.filename}.", suffix=".part", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = opener.open(url, timeout=TIMEOUT_S)
            except urllib.error.HTTPError as e:
                raise DownloadError(f"Downloading {release.filename} from {url} failed: HTTP {e.code} {e.reason}. "
                                    f"Check the address (or {BASE_URL_ENV}) and try again.") from e
            except (urllib.error.URLError, OSError) as e:
                raise DownloadError(f"Could not reach {url} to download {release.filename}: {e}. "
                                    f"Check the network connection (or {BASE_URL_ENV}) and try again.") from e
            with response:
                advertised_size, advertised_sha = _advertised(redirects.hops, response)
                expected_size = release.size if release.size is not None else advertised_size
                expected_sha = release.sha256 or advertised_sha
                digest = hashlib.sha256()
                done = 0
                while True:
                    try:
                        chunk = response.read(CHUNK_BYTES)
                    except Exception as e:  # noqa: BLE001 - http.client raises several kinds on a dropped link
                        raise DownloadError(f"Connection lost after {done} bytes while downloading {release.filename} "
                                            f"from {url}: {e}. Nothing was kept; run the download again.") from e
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, expected_size)
        if expected_size is not None and done != expected_size:
            raise DownloadError(f"{release.filename}: received {done} bytes but {expected_size} were expected "
                                f"(truncated or wrong file at {url}). Nothing was kept; run the download again.")
        if expected_sha is not None and digest.hexdigest() != expected_sha:
            raise DownloadError(f"{release.filename}: sha256 {digest.hexdigest()} does not match the expected "
                                f"{expected_sha}; the file at {url} is corrupt or not the official release. Nothing was kept.")
        os.replace(tmp, final)
        return final
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def release_named(filename):
    try:
        return RELEASES[filename]
    except KeyError:
        raise DownloadError(f"Unknown DDColor release {filename!r}; choose one of: {', '.join(RELEASES)}.") from None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nodes.download", description="Download official DDColor checkpoints.")
    parser.add_argument("release", nargs="+", choices=sorted(RELEASES), help="file name(s) of the release(s)")
    parser.add_argument("--dest", required=True, help="folder to put them in (ComfyUI's models/ddcolor)")
    args = parser.parse_args(argv)

    def report(done, total):
        pct = f"{100 * done / total:5.1f}%" if total else f"{done >> 20} MiB"
        print(f"\r  {pct}", end="", flush=True)

    for name in args.release:
        print(f"{name}:")
        try:
            path = download(release_named(name), args.dest, progress=report)
        except DownloadError as e:
            print(f"\nerror: {e}", file=sys.stderr)
            return 1
        print(f"\n  -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
