"""Registry conventions: `comfy node validate` (the Comfy registry's own check, from comfy-cli) passes
on this repo and fails on a broken pyproject.toml; the publish workflow runs on a version tag through
the registry's action; the README's install command names the registry id from pyproject.toml."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gpu_guard.pack_version import VERSION
from tests.harness.required import missing

REPO_ROOT = Path(__file__).resolve().parent.parent
COMFY = REPO_ROOT / ".cache" / "comfy-cli" / "bin" / "comfy"


def validate(folder, home):
    if not COMFY.exists():
        missing(f"comfy-cli is not installed at {COMFY}: run scripts/setup_env.sh")
    env = {**os.environ, "HOME": str(home)}  # comfy-cli writes its own config there
    result = subprocess.run([str(COMFY), "--skip-prompt", "--no-enable-telemetry", "node", "validate"],
                            cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_comfy_node_validate_passes_without_security_warnings(tmp_path):
    code, output = validate(REPO_ROOT, tmp_path)
    assert code == 0, output
    assert "All validation checks passed" in output and "Security warnings found" not in output, output


def test_comfy_node_validate_refuses_a_pyproject_without_version(tmp_path):
    folder = tmp_path / "pack"
    folder.mkdir()
    text = (REPO_ROOT / "pyproject.toml").read_text()
    (folder / "pyproject.toml").write_text(re.sub(r'^version = ".*"\n', "", text, count=1, flags=re.M))
    code, output = validate(folder, tmp_path)
    assert code != 0 and "project version is empty" in output, output


def pyproject_name():
    return re.search(r'^name = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M).group(1)


def test_publish_workflow_runs_the_registry_action_on_a_version_tag():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "publish.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert list(triggers) == ["push"] and triggers["push"]["tags"] == ["v*.*.*"]
    steps = workflow["jobs"]["publish-node"]["steps"]
    action = next(s for s in steps if s.get("uses", "").startswith("Comfy-Org/publish-node-action@"))
    assert action["with"]["personal_access_token"] == "${{ secrets.REGISTRY_ACCESS_TOKEN }}"
    # the tag check runs before it: a tag that is not the pyproject version publishes nothing
    check = next(s for s in steps if "GITHUB_REF_NAME" in s.get("run", ""))
    assert steps.index(check) < steps.index(action)
    script = check["run"]
    bash = shutil.which("bash")
    for tag, code in ((f"v{VERSION}", 0), ("v0.0.0-not-it", 1)):
        result = subprocess.run([bash, "-e", "-c", script], cwd=REPO_ROOT, env={**os.environ, "GITHUB_REF_NAME": tag},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == code, result.stdout + result.stderr


def test_readme_install_names_the_registry_id():
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"comfy node install {pyproject_name()}" in readme
