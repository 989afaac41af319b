#!/usr/bin/env bash
# Creates .venv with torch and everything the pack, its tests and its demo need.
# Idempotent: a second run only checks. Usage: scripts/setup_env.sh [--with-browser]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
# With CI=true every test dependency must install (a missing one would otherwise turn tests into skips);
# --with-browser is implied. On a workstation a failure is a warning and those tests skip.
case "${CI:-}" in true|1|yes) ci=1 ;; *) ci=0 ;; esac
failed=()
missing() {  # $1: what, $2: which tests
  if [ "$ci" = 1 ]; then
    echo "setup_env: ERROR: $1 - with CI=true $2 must run, so the install fails" >&2
    failed+=("$1")
  else
    echo "setup_env: $1; $2 will be skipped" >&2
  fi
}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch + torchvision: ComfyUI imports torchvision (through spandrel and kornia); the pair must match.
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  "${pip[@]}" "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
fi
"${pip[@]}" -r requirements.txt -r requirements-test.txt
if [ "${1:-}" = "--with-browser" ] || [ "$ci" = 1 ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || missing "could not install chromium" "the browser tests"
    else
      missing "chromium not found and not root" "the browser tests"
    fi
  fi
fi
# Debian's Prometheus (server + promtool) and Alertmanager: the rules and end-to-end operations tests.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus prometheus-alertmanager >/dev/null) \
      || missing "could not install prometheus" "the Prometheus tests"
  else
    missing "prometheus/prometheus-alertmanager not found and not root" "the Prometheus tests"
  fi
fi
# Debian's HAProxy: the load-balancer drill (tests/scale_out) puts two ComfyUI servers behind it.
# Debian's tini: the container's PID 1 (deploy/container); tests/deploy runs the pod's command with it.
for tool in haproxy tini; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$tool" >/dev/null) \
        || missing "could not install $tool" "the tests that need $tool"
    else
      missing "$tool not found and not root" "the tests that need $tool"
    fi
  fi
done
# comfy-cli, the Comfy registry's tool, in a venv of its own (its many dependencies stay out of .venv):
# tests/test_registry.py runs `comfy node validate` with it. Unpinned, like the registry's publish action.
if [ ! -x .cache/comfy-cli/bin/comfy ]; then
  ("$py" -m venv .cache/comfy-cli && .cache/comfy-cli/bin/python -m pip install -q --disable-pip-version-check comfy-cli) \
    || missing "could not install comfy-cli" "the registry validation test"
fi
# Each tool is checked once more where the tests look for it: an install that "succeeded" without it counts.
if [ "$ci" = 1 ]; then
  for tool in chromium prometheus promtool prometheus-alertmanager amtool haproxy tini; do
    command -v "$tool" >/dev/null 2>&1 || missing "$tool is not on PATH after the install" "the tests that use it"
  done
  [ -x .cache/comfy-cli/bin/comfy ] || missing "comfy-cli is not at .cache/comfy-cli/bin/comfy" "the registry test"
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "setup_env: FAILED (CI=true): ${failed[*]}" >&2
    exit 1
  fi
fi
echo "setup_env: ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
