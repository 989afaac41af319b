"""The checkpoint download (`python -m nodes.download`, the code behind the download node) running the
real huggingface_hub against a loopback server that speaks the Hub's resolve protocol, with HF_ENDPOINT
pointing at it: a fresh download into the shared cache, a dropped connection resumed, a tampered or
wrong file refused, offline mode with and without the file, and the messages for a missing file, no
network and a full disk. Each run is a fresh process, since huggingface_hub reads its environment
variables once, at import."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodes.download import DownloadError, release_named
from nodes.releases import RELEASES, REPO_ID, RETIRED_BASE_URL_ENV
from tests.nodes.hub_server import COMMIT, HubFile, HubServer

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = "ddcolor_paper_tiny.pth"
TOKEN = "hf_loopbackTestToken"


@pytest.fixture(scope="module")
def tiny_bytes(synthetic_checkpoint):
    if synthetic_checkpoint is None:
        pytest.skip("no synthetic DDColor checkpoint to serve")
    return Path(synthetic_checkpoint).read_bytes()


@pytest.fixture
def hub():
    server = HubServer(REPO_ID)
    yield server
    server.close()


class Run:
    def __init__(self, tmp_path, hub):
        self.hf_home = tmp_path / "hf"
        self.dest = tmp_path / "models" / "ddcolor"
        self.hub = hub

    def __call__(self, *names, endpoint=None, **env):
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("HF_", "HUGGINGFACE_")) and k != RETIRED_BASE_URL_ENV}
        environment.update(HF_HOME=str(self.hf_home), HF_ENDPOINT=endpoint or self.hub.endpoint,
                           HF_HUB_DISABLE_TELEMETRY="1", HF_TOKEN=TOKEN)
        environment.update(env)
        return subprocess.run([sys.executable, "-m", "nodes.download", *(names or (TINY,)), "--dest", str(self.dest)],
                              cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300)

    def kept(self):
        return sorted(p.name for p in self.dest.iterdir()) if self.dest.exists() else []

    def cached(self, name=TINY):
        return self.hf_home / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT / name

    def blobs(self):
        folder = self.hf_home / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "blobs"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def run(tmp_path, hub):
    return Run(tmp_path, hub)


def ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def refused(result):
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stderr


def test_fresh_download_goes_through_the_cache_then_offline_uses_it(run, hub, tiny_bytes):
    hub.files[TINY] = HubFile(tiny_bytes)
    result = ok(run())
    final = run.dest / TINY
    assert final.read_bytes() == tiny_bytes
    assert run.kept() == [TINY]  # no temporary file next to it
    assert "100.0%" in result.stdout
    # the shared Hugging Face cache holds it, and models/ddcolor holds the same file, not a second copy
    assert run.cached().resolve().stat().st_ino == final.stat().st_ino
    # HF_TOKEN reached the Hub
    assert {r.authorization for r in hub.seen("hub")} == {f"Bearer {TOKEN}"}
    assert len(hub.seen("cdn", "GET")) == 1

    final.unlink()
    before = len(hub.requests)
    ok(run(HF_HUB_OFFLINE="1"))  # offline, from the cache (checked again), without a request
    assert final.read_bytes() == tiny_bytes
    ok(run(HF_HUB_OFFLINE="1"))  # offline, already in models/ddcolor: kept as it is
    assert len(hub.requests) == before


def test_dropped_connection_is_resumed_where_it_stopped(run, hub, tiny_bytes):
    cut = len(tiny_bytes) // 3
    hub.files[TINY] = HubFile(tiny_bytes, drop_after=cut, drops=1)
    ok(run())
    assert (run.dest / TINY).read_bytes() == tiny_bytes
    first, resumed = [r.range for r in hub.seen("cdn", "GET")]
    # the second request asks only for the rest (from the last whole chunk written before the cut)
    assert first is None and resumed.startswith("bytes=") and resumed.endswith("-")
    assert 0 < int(resumed[len("bytes="):-1]) <= cut


def test_connection_that_does_not_come_back_keeps_nothing(run, hub):
    hub.files[TINY] = HubFile(os.urandom(1 << 20), drop_after=0, drops=1000)
    message = refused(run())
    assert "connection was lost" in message and TINY in message and "run the download again" in message
    # nothing in models/ddcolor, and no complete file in the cache (a partial one is the library's resume point)
    assert run.kept() == [] and [b for b in run.blobs() if not b.endswith(".incomplete")] == []


def test_tampered_file_is_refused_and_leaves_the_cache(run, hub, tiny_bytes):
    tampered = bytearray(tiny_bytes)
    tampered[len(tampered) // 2] ^= 0xFF
    hub.files[TINY] = HubFile(tiny_bytes, served=bytes(tampered))
    message = refused(run())
    assert f"{TINY} failed the integrity check" in message
    assert f"{len(tiny_bytes):,} bytes" in message and hub.files[TINY].sha256 in message
    assert "Run the download again" in message
    assert run.kept() == [] and run.blobs() == []
    # the refused file is not served from the cache later, offline or not
    assert "not in the Hugging Face cache" in refused(run(HF_HUB_OFFLINE="1"))


def test_file_of_another_variant_is_refused(run, hub, tiny_bytes):
    hub.files["ddcolor_artistic.pth"] = HubFile(tiny_bytes)  # right sha and size, wrong model
    message = refused(run("ddcolor_artistic.pth"))
    assert "is a DDColor-tiny checkpoint, but the official ddcolor_artistic.pth is DDColor-large" in message
    assert run.kept() == [] and run.blobs() == []


def test_file_that_is_no_checkpoint_is_refused(run, hub):
    hub.files[TINY] = HubFile(os.urandom(1 << 20))
    message = refused(run())
    assert f"{TINY} from {hub.endpoint} is not a usable DDColor checkpoint" in message
    assert run.kept() == [] and run.blobs() == []


def test_offline_without_the_file(run, hub, tiny_bytes):
    hub.files[TINY] = HubFile(tiny_bytes)
    message = refused(run(HF_HUB_OFFLINE="1"))
    assert f"HF_HUB_OFFLINE is set and {TINY} is not in the Hugging Face cache" in message
    assert "Unset HF_HUB_OFFLINE" in message
    assert hub.requests == [] and run.kept() == []


def test_missing_file_is_a_404_naming_the_mirror(run, hub):
    message = refused(run())
    assert f"{TINY} was not found in {REPO_ID} at {hub.endpoint} (HTTP 404)" in message
    assert "HF_ENDPOINT" in message and run.kept() == []


def test_no_network_names_the_endpoint_and_a_mirror(run):
    message = refused(run(endpoint="http://127.0.0.1:9"))  # discard port: nothing listens
    assert "Could not reach http://127.0.0.1:9" in message and TINY in message
    assert "HF_ENDPOINT=https://hf-mirror.com" in message and run.kept() == []


def test_full_disk_is_refused_before_downloading(run, hub):
    hub.files[TINY] = HubFile(b"x", advertised_size=10 ** 17)  # 100 PB
    message = refused(run())
    assert f"Not enough disk space for {TINY}: it needs 100,000,000,000,000,000 bytes" in message
    assert "HF_HUB_CACHE" in message
    assert hub.seen("cdn") == [] and run.kept() == []


def test_retired_base_url_setting_says_what_replaced_it(run, hub):
    message = refused(run(**{RETIRED_BASE_URL_ENV: "https://mirror.example/x"}))
    assert f"{RETIRED_BASE_URL_ENV} is no longer read" in message and "HF_ENDPOINT=" in message
    assert hub.requests == []


def test_missing_huggingface_hub_says_to_install_the_requirements(run, tmp_path):
    shadow = tmp_path / "shadow" / "huggingface_hub"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden for this test')\n")
    message = refused(run(PYTHONPATH=str(shadow.parent)))
    assert f"Downloading {TINY} needs huggingface_hub" in message and "pip install -r requirements.txt" in message


def test_unknown_release_lists_the_choices():
    with pytest.raises(DownloadError, match="ddcolor_paper.pth"):
        release_named("ddcolor_v2.pth")


def test_the_four_official_releases():
    assert {n: r.variant for n, r in RELEASES.items()} == {
        "ddcolor_paper.pth": "large", "ddcolor_modelscope.pth": "large",
        "ddcolor_artistic.pth": "large", "ddcolor_paper_tiny.pth": "tiny"}
