#!/usr/bin/env bash
# Creates .venv with torch and everything the pack, its tests and its demo need.
# Idempotent: a second run only checks. Usage: scripts/setup_env.sh [--with-browser]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch + torchvision: ComfyUI imports torchvision (through spandrel and kornia); the pair must match.
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  "${pip[@]}" "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
fi
"${pip[@]}" -r requirements.txt -r requirements-test.txt
if [ "${1:-}" = "--with-browser" ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "setup_env: could not install chromium; browser tests will be skipped" >&2
    else
      echo "setup_env: chromium not found and not root; browser tests will be skipped" >&2
    fi
  fi
fi
# Debian's Prometheus (server + promtool) and Alertmanager: the rules and end-to-end operations tests.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus prometheus-alertmanager >/dev/null) \
      || echo "setup_env: could not install prometheus; the Prometheus tests will be skipped" >&2
  else
    echo "setup_env: prometheus/prometheus-alertmanager not found and not root; the Prometheus tests will be skipped" >&2
  fi
fi
# Debian's HAProxy: the load-balancer drill (tests/scale_out) puts two ComfyUI servers behind it.
# Debian's tini: the container's PID 1 (deploy/container); tests/deploy runs the pod's command with it.
for tool in haproxy tini; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$tool" >/dev/null); then
      :
    elif [ "${CI:-}" = true ]; then
      echo "setup_env: could not install $tool (needs root and apt); with CI=true this is an error" >&2
      exit 1
    else
      echo "setup_env: $tool is not installed (run as root); the tests that need it will be skipped" >&2
    fi
  fi
done
# comfy-cli, the Comfy registry's tool, in a venv of its own (its many dependencies stay out of .venv):
# tests/test_registry.py runs `comfy node validate` with it. Unpinned, like the registry's publish action.
if [ ! -x .cache/comfy-cli/bin/comfy ]; then
  ("$py" -m venv .cache/comfy-cli && .cache/comfy-cli/bin/python -m pip install -q --disable-pip-version-check comfy-cli) \
    || echo "setup_env: could not install comfy-cli; the registry validation test will be skipped" >&2
fi
echo "setup_env: ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
