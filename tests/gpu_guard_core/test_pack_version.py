"""The pack's version has one source, pyproject.toml, and the guard's status object carries it."""
import json

import pytest

from gpu_guard.pack_version import PYPROJECT, VERSION, read_version


def test_version_is_the_one_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with open(PYPROJECT, "rb") as f:
        expected = tomllib.load(f)["project"]["version"]
    assert VERSION == expected


def test_only_the_project_table_counts(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.other]\nversion = "9.9.9"\n\n[project]\nname = "x"\nversion = \'1.2.3\'\n\n[tool.comfy]\n')
    assert read_version(path) == "1.2.3"
    path.write_text('[project]\nname = "x"\n\n[tool.other]\nversion = "9.9.9"\n')
    assert read_version(path) is None
    assert read_version(tmp_path / "missing.toml") is None


def test_status_carries_the_version(make_guard):
    status = json.loads(json.dumps(make_guard().status()))
    assert status["version"] == VERSION
