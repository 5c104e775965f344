#!/usr/bin/env bash
# Create .venv (if missing) and install s2kd with its dependencies.
#
#   bash scripts/bootstrap.sh [--browser]
#
# torch: if the venv already has a torch (e.g. a CUDA build you installed yourself), it is kept;
# otherwise torch==$S2KD_TORCH (default 2.13.0, the CPU build on this project's machines) is
# installed in the same pip command as everything else, so no unpinned CUDA build is pulled in.
# --browser also installs Debian's chromium for the browser tests when running as root with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_PIN="${S2KD_TORCH:-2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[bootstrap] keeping installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
  "${PIP[@]}" -e ".[dev]"
else
  echo "[bootstrap] installing torch==$TORCH_PIN with s2kd"
  "${PIP[@]}" "torch==$TORCH_PIN" -e ".[dev]"
fi

if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[bootstrap] installing Debian chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "[bootstrap] /usr/bin/chromium missing and not root: browser tests will be skipped" >&2
  fi
fi
